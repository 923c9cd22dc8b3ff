"""The SQL that builds and advances an experiment's live sums (private to
:mod:`banditroute.service.experiments.live`): every decision of the experiment scored as of two
positions of the event log, grouped the ways the status needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    select,
    text,
    true,
    union,
    union_all,
)
from sqlalchemy import null as null_
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, aggregate_order_by

from banditroute.learners.reward import RewardWeights
from banditroute.service.experiments.scoring import outcome_quality, reward
from banditroute.service.experiments.sums import CELL, EPOCH, HOUR
from banditroute.service.storage.models import Decision, Feedback, Outcome


@dataclass(frozen=True)
class _Target:
    """A variant as the off-policy estimates see it."""

    name: str
    key: str  # its key in decisions.shadow


@dataclass
class _Row:
    variant: str
    model: str
    propensity: float
    shadow: Mapping[str, Any] | None
    candidates: Sequence[str] | None
    probabilities: Sequence[float] | None
    created_at: datetime
    had_outcome: bool
    has_outcome: bool
    base: float | None
    cost: float | None
    latency: float | None
    old: float | None  # reward as of the previous position (None: not scored)
    new: float | None  # reward as of the new position


def _changes_query(weights: RewardWeights, *, build: bool) -> Any:
    """Each decision of the experiment that got an outcome or a rating with an id in
    ``(:after, :upto]`` (every decision of the experiment when ``build``), scored as of
    ``:after`` and as of ``:upto`` by :mod:`banditroute.service.experiments.scoring`."""
    d, o, f = Decision.__table__, Outcome.__table__, Feedback.__table__
    after: Any = bindparam("after")
    upto: Any = bindparam("upto")
    if build:
        source: Any = d
    else:
        changed = union(
            select(o.c.decision_id, o.c.decision_created_at).where(
                o.c.event_id > after, o.c.event_id <= upto
            ),
            select(f.c.decision_id, f.c.decision_created_at).where(
                f.c.event_id > after, f.c.event_id <= upto
            ),
        ).subquery("changed")
        source = changed.join(
            d,
            and_(
                d.c.decision_id == changed.c.decision_id,
                d.c.created_at == changed.c.decision_created_at,
            ),
        )
    fb = (
        select(
            func.avg(f.c.rating).filter(f.c.event_id <= after).label("old"),
            func.avg(f.c.rating).filter(f.c.event_id <= upto).label("new"),
        )
        .where(f.c.decision_id == d.c.decision_id, f.c.decision_created_at == d.c.created_at)
        .lateral("fb")
    )
    joined = source.outerjoin(
        o, and_(o.c.decision_id == d.c.decision_id, o.c.decision_created_at == d.c.created_at)
    ).outerjoin(fb, true())
    inner = (
        select(
            d.c.variant,
            d.c.model,
            d.c.propensity,
            d.c.shadow,
            d.c.candidates,
            d.c.probabilities,
            d.c.created_at,
            (o.c.event_id <= after).label("had"),
            (o.c.event_id <= upto).label("has"),
            outcome_quality(o.c).label("base"),
            o.c.cost_usd,
            o.c.latency_ms,
            fb.c.old,
            fb.c.new,
        )
        .select_from(joined)
        .where(d.c.experiment == bindparam("name"), d.c.experiment != "")
        .subquery("inner")
    )
    i = inner.c

    def scored(has: Any, rating: Any) -> Any:
        present = func.coalesce(has, False)
        return case(
            (and_(~present, rating.is_(None)), None),
            else_=reward(
                case((present, i.base), else_=None),
                rating,
                case((present, i.cost_usd), else_=None),
                case((present, i.latency_ms), else_=None),
                weights,
            ),
        )

    return select(
        i.variant,
        i.model,
        i.propensity,
        i.shadow,
        i.candidates,
        i.probabilities,
        i.created_at,
        func.coalesce(i.had, False).label("had"),
        func.coalesce(i.has, False).label("has"),
        i.base,
        i.cost_usd,
        i.latency_ms,
        scored(i.had, i.old).label("old"),
        scored(i.has, i.new).label("new"),
    )


def _build_query(weights: RewardWeights) -> Any:
    """Every sum of the experiment ``:name`` as of ``:upto`` in one statement: the decisions
    joined to their outcomes and mean ratings once (a ``MATERIALIZED`` CTE, read through the
    partial index ``ix_decisions_experiment_variant``), then grouped six ways (``part``):
    ``v`` per served variant, ``c`` per variant and :data:`CELL`, ``m`` spend per variant and
    hour of the decision, ``k`` outcomes per shadow key, ``s`` and ``h`` the off-policy
    :class:`Group` of served and shadow-scored decisions."""
    rows = _changes_query(weights, build=True).subquery("rows")
    sc = (
        select(
            rows.c.variant,
            rows.c.model,
            rows.c.propensity,
            rows.c.shadow,
            rows.c.candidates,
            rows.c.probabilities,
            rows.c.created_at,
            rows.c.has,
            rows.c.base,
            rows.c.cost_usd,
            rows.c.latency_ms,
            rows.c.new.label("r"),
        )
        .cte("sc")
        .prefix_with("MATERIALIZED")
    )
    c = sc.c

    def null(t: Any) -> Any:
        return cast(null_(), t)

    def part(name: str, **kw: Any) -> list[Any]:
        cols = {
            "variant": null(String),
            "key": null(String),
            "model": null(String),
            "cands": null(ARRAY(String)),
            "probs": null(ARRAY(DOUBLE_PRECISION)),
            "dist": null(JSONB),
            "t": null(DateTime(timezone=True)),
            "lat": null(ARRAY(DOUBLE_PRECISION)),
            **{f"n{i}": null(BigInteger) for i in range(4)},
            **{f"f{i}": null(DOUBLE_PRECISION) for i in range(7)},
        }
        cols.update(kw)
        return [literal(name).label("part"), *(v.label(k) for k, v in cols.items())]

    def sq(x: Any) -> Any:
        return func.sum(x * x)

    scored = c.r.is_not(None)
    u = 1.0 / c.propensity
    ope = {
        "n0": func.count(),
        "f0": func.sum(c.r),
        "f1": sq(c.r),
        "f2": func.sum(u),
        "f3": sq(u),
        "f4": func.sum(u * c.r),
        "f5": func.sum(u * u * c.r),
        "f6": sq(u * c.r),
    }
    each = (
        func.jsonb_each(func.coalesce(c.shadow, cast(literal("{}"), JSONB)))
        .table_valued("key", column("value", JSONB))
        .lateral("e")
    )
    dist = each.c.value["probabilities"]
    has = func.coalesce(c.has, False)
    cell = func.date_bin(CELL, c.created_at, literal(EPOCH))
    hour = func.date_bin(HOUR, c.created_at, literal(EPOCH))
    parts = [
        select(
            *part(
                "v",
                variant=c.variant,
                n0=func.count().filter(has),
                n1=func.count(c.base),
                n2=func.count(c.cost_usd),
                n3=func.count(c.r),
                f0=func.sum(c.base),
                f1=sq(c.base),
                f2=func.sum(c.cost_usd),
                f3=sq(c.cost_usd),
                f4=func.sum(c.r),
                f5=sq(c.r),
                lat=func.array_agg(aggregate_order_by(c.latency_ms, c.latency_ms)).filter(
                    c.latency_ms.is_not(None)
                ),
            )
        ).group_by(c.variant),
        select(*part("c", variant=c.variant, t=cell, n0=func.count(), f0=func.sum(c.r), f1=sq(c.r)))
        .where(scored)
        .group_by(c.variant, cell),
        select(*part("m", variant=c.variant, t=hour, f0=func.sum(c.cost_usd)))
        .where(c.cost_usd.is_not(None))
        .group_by(c.variant, hour),
        select(*part("k", key=each.c.key, n0=func.count().filter(has)))
        .select_from(sc.join(each, true()))
        .where(c.shadow.is_not(None))
        .group_by(each.c.key),
        select(
            *part(
                "s",
                variant=c.variant,
                model=c.model,
                cands=c.candidates,
                probs=c.probabilities,
                **ope,
            )
        )
        .where(scored)
        .group_by(c.variant, c.model, c.candidates, c.probabilities),
        select(
            *part(
                "h",
                key=each.c.key,
                variant=c.variant,
                model=c.model,
                dist=dist,
                **ope,
            )
        )
        .select_from(sc.join(each, true()))
        .where(scored, c.shadow.is_not(None))
        .group_by(each.c.key, c.variant, c.model, dist),
    ]
    return union_all(*parts)


_POSITION = text(
    "SELECT greatest((SELECT max(event_id) FROM outcomes), (SELECT max(event_id) FROM feedback))"
)
_SERVED = text(
    "SELECT variant, count(*) FROM decisions WHERE experiment = :name AND experiment <> '' "
    "GROUP BY variant"
)
_SHADOW_TAIL = text(
    """
    SELECT k.key, d.event_id <= :settled AS settled, count(*)
    FROM decisions d
    CROSS JOIN LATERAL jsonb_object_keys(coalesce(d.shadow, '{}'::jsonb)) AS k(key)
    WHERE d.experiment = :name AND d.experiment <> '' AND d.event_id > :stable
    GROUP BY 1, 2
    """
)
_SEQUENCE = text("SELECT last_value FROM event_ids")
