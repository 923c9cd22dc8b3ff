"""The dashboard's reads: aggregate queries over decisions and outcomes, built as ``Select``.

Every time-series query groups in PostgreSQL (``date_bin(stride, created_at, epoch)`` buckets,
``GROUP BY``) and returns at most buckets x models rows, so a page never moves raw decisions
into Python. Why these stay fast on millions of decisions (measured by
``benchmarks/dashboard.py``):

* ``decisions`` is partitioned by month of ``created_at``: a window prunes to one or two
  partitions.
* Decision ids are UUIDv7 whose leading 48 bits are ``created_at`` in milliseconds, so every
  window query also bounds ``decision_id >= uuid_floor(since)``. The primary key
  ``(decision_id, created_at)`` then serves short windows (hour, day) as an index range scan,
  and "most recent decisions" as a backward scan of the same index (``ORDER BY decision_id
  DESC LIMIT n``): no index is added for the dashboard.
* Outcomes are joined on ``(decision_id, decision_created_at)`` with
  ``decision_created_at >= since`` in the join condition, which the BRIN index
  ``ix_outcomes_decision_created_at`` turns into a scan of the window's blocks only.
* Experiment pages read the experiment's live sums (``banditroute.service.experiments.live``:
  built once through the partial index ``ix_decisions_experiment_variant``, then advanced by
  the outcomes and ratings logged since); :func:`experiment_rewards_by_bucket` is the raw-row
  series they are tested against, used for strides that are not whole 2-minute cells.

Long windows (week, month) aggregate every decision in them: a parallel sequential scan of the
window's partitions plus a hash join, which is what ``benchmarks/dashboard.py`` times.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    desc,
    func,
    literal,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from banditroute.learners.reward import RewardWeights
from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.experiments.scoring import outcome_quality, reward
from banditroute.service.storage.models import (
    Decision,
    Feedback,
    Outcome,
    Policy,
    PolicySnapshot,
    Route,
)

__all__ = [
    "BucketRow",
    "CellKey",
    "DecisionRow",
    "RouteInfo",
    "VariantBucket",
    "decisions_after",
    "decisions_by_bucket",
    "experiment_rewards_by_bucket",
    "latest_snapshot",
    "latest_version",
    "outcomes_after",
    "recent_decisions",
    "routes",
    "uuid_floor",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def uuid_floor(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 whose timestamp is ``at`` (millisecond precision).

    Every decision made at or after ``at`` has an id ``>=`` it (ids are UUIDv7, see
    ``banditroute.service.storage.ids``).

    >>> from banditroute.service.storage.ids import new_decision_id
    >>> at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    >>> uuid_floor(at) <= new_decision_id(at) < uuid_floor(at + timedelta(milliseconds=1))
    True
    """
    ms = (at - _EPOCH) // timedelta(milliseconds=1)
    return uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80)


def _since(since: datetime) -> ColumnElement[bool]:
    d = Decision.__table__.c
    return and_(d.decision_id >= uuid_floor(since), d.created_at >= since)


def _joined(since: datetime) -> Any:
    d, o = Decision.__table__, Outcome.__table__
    return d.outerjoin(
        o,
        and_(
            o.c.decision_id == d.c.decision_id,
            o.c.decision_created_at == d.c.created_at,
            o.c.decision_created_at >= since,
        ),
    )


def _bucket(stride: timedelta) -> ColumnElement[datetime]:
    return func.date_bin(stride, Decision.__table__.c.created_at, literal(_EPOCH))


# -- routes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteInfo:
    """A configured route (``policy_version`` 0 = latest; ``budget`` None = none)."""

    tenant: str
    name: str
    policy: str
    policy_version: int
    models: tuple[str, ...]
    budget: RouteBudget | None = None


def routes(conn: Connection, tenant: str | None = None, name: str | None = None) -> list[RouteInfo]:
    """Configured routes, by tenant then name (optionally one)."""
    q = select(
        Route.tenant,
        Route.name,
        Route.policy_name,
        Route.policy_version,
        Route.models,
        Route.budget_per_request_usd,
        Route.budget_usd,
        Route.budget_period,
        Route.budget_hard_cap,
    ).order_by(Route.tenant, Route.name)
    if tenant is not None:
        q = q.where(Route.tenant == tenant)
    if name is not None:
        q = q.where(Route.name == name)
    return [
        RouteInfo(r.tenant, r.name, r.policy_name, int(r.policy_version), tuple(r.models or ()),
                  RouteBudget.of(r))
        for r in conn.execute(q)
    ]


def latest_version(conn: Connection, policy: str) -> int:
    """Newest version of ``policy`` (0 when it has none)."""
    v = conn.execute(select(func.max(Policy.version)).where(Policy.name == policy)).scalar()
    return int(v or 0)


def latest_snapshot(conn: Connection, policy: str, version: int) -> tuple[int, bytes] | None:
    """``(last_event_id, state)`` of the newest snapshot of a policy version, if any."""
    row = conn.execute(
        select(PolicySnapshot.last_event_id, PolicySnapshot.state)
        .where(PolicySnapshot.policy_name == policy, PolicySnapshot.policy_version == version)
        .order_by(desc(PolicySnapshot.last_event_id))
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), bytes(row[1]))


# -- route page -------------------------------------------------------------------------------
#: Key of one rollup cell: (hour, tenant, route, model, policy, policy version).
CellKey = tuple[datetime, str, str, str, str, int]


@dataclass(frozen=True)
class BucketRow:
    """Decisions of one route, model and policy version in one time bucket, with the sums of
    their outcomes."""

    bucket: datetime
    tenant: str
    route: str
    model: str
    policy: str
    policy_version: int
    decisions: int
    outcomes: int
    reward_sum: float
    reward_sq: float
    cost_n: int
    cost_sum: float
    latency_n: int
    latency_sum: float


def _outcome_sums() -> list[ColumnElement[Any]]:
    o = Outcome.__table__.c
    return [
        func.count(o.event_id),
        func.sum(o.reward),
        func.sum(o.reward * o.reward),
        func.count(o.cost_usd),
        func.sum(o.cost_usd),
        func.count(o.latency_ms),
        func.sum(o.latency_ms),
    ]


def _bucket_row(r: Any) -> BucketRow:
    return BucketRow(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        int(r[5]),
        int(r[6]),
        int(r[7]),
        float(r[8] or 0.0),
        float(r[9] or 0.0),
        int(r[10]),
        float(r[11] or 0.0),
        int(r[12]),
        float(r[13] or 0.0),
    )


def decisions_by_bucket(
    conn: Connection,
    since: datetime,
    stride: timedelta,
    *,
    tenant: str | None = None,
    route: str | None = None,
) -> list[BucketRow]:
    """Decisions since ``since`` (all routes, or one) grouped by bucket, route, model and
    policy version, with their outcomes: the raw-row path, used for the hour window and until
    the rollup (:mod:`banditroute.service.dashboard.rollup`) is built."""
    d = Decision.__table__.c
    bucket = _bucket(stride).label("bucket")
    keys = (bucket, d.tenant, d.route, d.model, d.policy_name, d.policy_version)
    q = (
        select(*keys, func.count(), *_outcome_sums())
        .select_from(_joined(since))
        .where(_since(since))
        .group_by(*keys)
        .order_by(bucket)
    )
    if tenant is not None:
        q = q.where(d.tenant == tenant)
    if route is not None:
        q = q.where(d.route == route)
    return [_bucket_row(r) for r in conn.execute(q)]


def decisions_after(
    conn: Connection, after: int, floor: datetime
) -> tuple[list[tuple[CellKey, int]], int]:
    """Decisions with ``event_id > after`` made since ``floor``, counted per rollup cell, and
    the largest event id among them (``after`` if none)."""
    d = Decision.__table__.c
    hour = _bucket(timedelta(hours=1)).label("hour")
    keys = (hour, d.tenant, d.route, d.model, d.policy_name, d.policy_version)
    q = (
        select(*keys, func.count(), func.max(d.event_id))
        .where(d.event_id > after, d.created_at >= floor)
        .group_by(*keys)
    )
    out: list[tuple[CellKey, int]] = []
    top = after
    for r in conn.execute(q):
        out.append(((r[0], r[1], r[2], r[3], r[4], int(r[5])), int(r[6])))
        top = max(top, int(r[7]))
    return out, top


def outcomes_after(
    conn: Connection, after: int, floor: datetime
) -> tuple[list[tuple[CellKey, BucketRow]], int]:
    """Outcomes with ``event_id > after`` of decisions made since ``floor``, summed per rollup
    cell of their decision, and the largest event id among them (``after`` if none)."""
    d, o = Decision.__table__.c, Outcome.__table__.c
    hour = _bucket(timedelta(hours=1)).label("hour")
    keys = (hour, d.tenant, d.route, d.model, d.policy_name, d.policy_version)
    joined = Outcome.__table__.join(
        Decision.__table__,
        and_(d.decision_id == o.decision_id, d.created_at == o.decision_created_at),
    )
    q = (
        select(*keys, literal(0), *_outcome_sums(), func.max(o.event_id))
        .select_from(joined)
        .where(o.event_id > after, o.decision_created_at >= floor, d.created_at >= floor)
        .group_by(*keys)
    )
    out: list[tuple[CellKey, BucketRow]] = []
    top = after
    for r in conn.execute(q):
        out.append(((r[0], r[1], r[2], r[3], r[4], int(r[5])), _bucket_row(r)))
        top = max(top, int(r[14]))
    return out, top


@dataclass(frozen=True)
class DecisionRow:
    """One recent decision as the dashboard shows it (never the prompt)."""

    created_at: datetime
    model: str
    propensity: float
    policy: str
    policy_version: int
    experiment: str
    variant: str
    reward: float | None
    cost_usd: float | None
    latency_ms: float | None
    #: "" when the policy's choice stood, "pacing" or "cap" when the route's budget changed it.
    pacing: str = ""


def recent_decisions(
    conn: Connection, tenant: str, route: str, since: datetime, limit: int = 25
) -> list[DecisionRow]:
    """The route's newest decisions since ``since`` (a backward scan of the primary key)."""
    d, o = Decision.__table__.c, Outcome.__table__.c
    q = (
        select(
            d.created_at,
            d.model,
            d.propensity,
            d.policy_name,
            d.policy_version,
            d.experiment,
            d.variant,
            o.reward,
            o.cost_usd,
            o.latency_ms,
            d.pacing,
        )
        .select_from(_joined(since))
        .where(_since(since), d.tenant == tenant, d.route == route)
        .order_by(desc(d.decision_id))
        .limit(limit)
    )
    return [
        DecisionRow(r[0], r[1], float(r[2]), r[3], int(r[4]), r[5], r[6], r[7], r[8], r[9],
                    r[10] or "")
        for r in conn.execute(q)
    ]


# -- experiment page --------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantBucket:
    """Rewards (under the experiment's yardstick) of one variant's outcomes in one bucket;
    ``bucket`` None holds everything before the window."""

    bucket: datetime | None
    variant: str
    n: int
    total: float
    total_sq: float


def experiment_rewards_by_bucket(
    conn: Connection,
    experiment: str,
    weights: RewardWeights,
    since: datetime,
    stride: timedelta,
    started: datetime | None = None,
) -> list[VariantBucket]:
    """Per variant and bucket: count, sum and sum of squares of the reward of each decision
    of ``experiment`` that has an outcome or a rating, scored with ``weights`` by
    :mod:`banditroute.service.experiments.scoring` (the rule of ``banditroute.learners.reward``,
    as the experiment status scores it). Tests check the sums against the status."""
    d, o, f = Decision.__table__.c, Outcome.__table__.c, Feedback.__table__.c
    # The mean rating once per decision (a LATERAL join, as the status query does), not a
    # scalar subquery that the reward expression below would evaluate several times.
    fb = (
        select(func.avg(f.rating).label("rating"))
        .where(f.decision_id == d.decision_id, f.decision_created_at == d.created_at)
        .lateral("fb")
    )
    base = outcome_quality(o).label("base")
    on = [o.decision_id == d.decision_id, o.decision_created_at == d.created_at]
    if started is not None:
        # No decision of the experiment predates it (a day of margin for clock skew between
        # servers and the database): lets the BRIN index skip older outcomes.
        on.append(o.decision_created_at >= started - timedelta(days=1))
    joined = Decision.__table__.outerjoin(Outcome.__table__, and_(*on)).outerjoin(fb, literal(True))
    inner = (
        select(
            d.variant,
            d.created_at,
            o.event_id.label("outcome_id"),
            o.cost_usd,
            o.latency_ms,
            base,
            fb.c.rating,
        )
        .select_from(joined)
        .where(d.experiment == experiment, d.experiment != "")
        .subquery()
    )
    i = inner.c
    scored = reward(i.base, i.rating, i.cost_usd, i.latency_ms, weights)
    bucket = case(
        (inner.c.created_at < since, None),
        else_=func.date_bin(stride, inner.c.created_at, literal(_EPOCH)),
    ).label("bucket")
    q = (
        select(
            bucket,
            inner.c.variant,
            func.count(),
            func.sum(scored),
            func.sum(scored * scored),
        )
        .where(inner.c.outcome_id.is_not(None) | inner.c.rating.is_not(None))
        .group_by(bucket, inner.c.variant)
        .order_by(bucket.asc().nulls_first())
    )
    return [
        VariantBucket(r[0], r[1], int(r[2]), float(r[3] or 0.0), float(r[4] or 0.0))
        for r in conn.execute(q)
    ]


def bucket_index(starts: Sequence[datetime]) -> dict[datetime, int]:
    """Position of each bucket start (UTC) in ``starts``."""
    return {t.astimezone(UTC): i for i, t in enumerate(starts)}
