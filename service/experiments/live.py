"""Live sums of an experiment, kept in memory and advanced along the event log.

The status of an experiment (:func:`banditroute.service.experiments.stats.experiment_status`)
is made of sums: per served variant the count, sum and sum of squares of reward, quality and
cost (the sum of cost is the variant's spend); its spend per hour of the decision (a budget
period's spend, see :meth:`ExperimentSums.spend_between`); the latencies (for p50/p95); per
shadow policy the decisions and outcomes it scored; and per variant the sufficient statistics
of the off-policy estimates (IPS, SNIPS and doubly robust are sums of per-decision terms, see
:class:`OffPolicySums`). Recomputing them from the raw
rows takes seconds on an experiment of a few hundred thousand decisions
(``benchmarks/dashboard.py``), so each process keeps them per experiment
(:class:`ExperimentSums`) and advances them like the dashboard's hourly rollup:

* outcomes and feedback share the event id sequence and become visible in id order
  (``banditroute.service.storage.models.event_log``). After applying every outcome and rating
  up to id ``w``, a refresh reads only the decisions that got an outcome or a rating with an id
  in ``(w, w']`` (``w'``: the largest such id in its ``REPEATABLE READ`` snapshot), through the
  primary keys of ``outcomes`` and ``feedback`` (``event_id``) and of ``decisions``;
* a rating changes the reward of a decision scored before (the mean rating is merged into the
  reward), so each such decision is scored twice by the SQL of
  :mod:`banditroute.service.experiments.scoring`: as of ``w`` (its outcome if ``<= w``, the mean
  of its ratings ``<= w``) and as of ``w'``. Its old contribution is subtracted and the new one
  added; an outcome (at most one per decision) adds its quality, cost (to the variant's spend
  and to the spend of its decision's hour) and latency once;
* decisions alone carry no ordered event id (writers commit them side by side), so the
  decisions of each served variant are counted at every refresh through the partial index
  ``ix_decisions_experiment_variant`` (an index-only scan), and the decisions each shadow
  policy scored (``decisions.shadow`` keys) are counted incrementally with a settling delay:
  decisions with ids up to a position read :data:`SETTLE_S` seconds ago are folded into a
  stable count once, the newer ones are counted again at every refresh;
* the first build is the same read over every decision of the experiment (the partial index),
  once per process.

The sums are a cache: they hold nothing that is not in the tables, and a restart rebuilds them.
They are exact up to floating-point rounding; ``tests/test_experiments_live.py`` checks them
against the previous computation (every scored row read into Python) on random logs.

Examples
--------
>>> m = Moments()
>>> m.add(1.0, 1); m.add(3.0, 1); m.add(1.0, -1)
>>> m.n, m.total, m.total_sq
(1, 3.0, 9.0)
>>> percentile_cont(np.array([1.0, 2.0, 3.0, 10.0]), 0.5)
2.5
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
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

from banditroute.learners.evaluation import Estimate
from banditroute.learners.reward import RewardWeights
from banditroute.learners.sequential import MeanSummary
from banditroute.service.experiments.scoring import outcome_quality, reward
from banditroute.service.experiments.shadow import shadow_key
from banditroute.service.experiments.views import ExperimentView
from banditroute.service.storage.models import Decision, Feedback, Outcome

__all__ = [
    "CELL",
    "SETTLE_S",
    "ExperimentSums",
    "Moments",
    "OffPolicySums",
    "VariantSums",
    "live_sums",
    "percentile_cont",
]

#: Width of the time cells of the reward series (every dashboard stride is a multiple).
CELL = timedelta(minutes=2)
#: Decision ids read this long ago are taken as committed (see the module doc).
SETTLE_S = 60.0
#: Experiments whose sums one process keeps (least recently used dropped first).
MAX_EXPERIMENTS = 64
#: A refresh that would read the events of more ids than this (outcomes and ratings of every
#: experiment, say after days without a view) rebuilds from the experiment's decisions instead.
REBUILD_AFTER_EVENTS = 500_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


HOUR = timedelta(hours=1)


def _floor(t: datetime, stride: timedelta) -> datetime:
    return _EPOCH + ((t - _EPOCH) // stride) * stride


def cell_of(t: datetime) -> datetime:
    """Start of ``t``'s :data:`CELL`, aligned as ``date_bin(CELL, t, epoch)``."""
    return _floor(t, CELL)


def percentile_cont(values: np.ndarray, p: float) -> float:
    """PostgreSQL's ``percentile_cont(p) WITHIN GROUP (ORDER BY x)`` of sorted ``values``."""
    n = int(values.size)
    if n == 0:
        return math.nan
    pos = p * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    first = float(values[lo])
    if hi == lo:
        return first
    return first + (float(values[hi]) - first) * (pos - lo)


@dataclass
class Moments:
    """Count, sum and sum of squares, with additions and retractions."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, x: float, sign: int) -> None:
        """Add (``sign`` 1) or retract (-1) one value."""
        self.n += sign
        self.total += sign * x
        self.total_sq += sign * x * x

    def merge(self, o: Moments) -> None:
        """Add ``o`` in place."""
        self.n += o.n
        self.total += o.total
        self.total_sq += o.total_sq

    @property
    def summary(self) -> MeanSummary:
        """As a :class:`~banditroute.learners.sequential.MeanSummary`."""
        return MeanSummary.from_sums(self.n, self.total, self.total_sq)


@dataclass
class VariantSums:
    """What a served variant's status row needs, but its decision count."""

    outcomes: int = 0
    reward: Moments = field(default_factory=Moments)
    quality: Moments = field(default_factory=Moments)
    cost: Moments = field(default_factory=Moments)
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))
    _pending: list[float] = field(default_factory=list)

    def sorted_latencies(self) -> np.ndarray:
        """Every outcome's latency, sorted (pending ones merged in)."""
        if self._pending:
            new = np.sort(np.asarray(self._pending, dtype=np.float64))
            self.latencies = np.insert(self.latencies, np.searchsorted(self.latencies, new), new)
            self._pending.clear()
        return self.latencies


@dataclass(frozen=True)
class Group:
    """Logged decisions of one logged model with one target distribution, as the off-policy
    sums take them: ``sums`` are ``(n, sum r, sum r^2, sum u, sum u^2, sum u r, sum u^2 r,
    sum u^2 r^2)`` with ``u = 1 / propensity`` (negated to retract); ``served``: the target
    variant served them (its probability of the logged model is the propensity)."""

    served: bool
    model: str
    dist: Mapping[str, float]
    sums: tuple[float, ...]


def row_group(
    served: bool, model: str, dist: Mapping[str, float], p: float, r: float, sign: int
) -> Group:
    """One decision (``sign`` 1 to add, -1 to retract) as a :class:`Group`."""
    u = 1.0 / p
    return Group(
        served,
        model,
        dist,
        (
            sign,
            sign * r,
            sign * r * r,
            sign * u,
            sign * u * u,
            sign * u * r,
            sign * u * u * r,
            sign * u * u * r * r,
        ),
    )


class OffPolicySums:
    """Sufficient statistics of the IPS, SNIPS and DR estimates of one target variant.

    Per logged decision ``i`` included for the target (the target's own served decisions, and
    the decisions on which its shadow scoring logged a distribution): reward ``r``, logging
    propensity ``p``, the target probability of the logged arm ``t`` (IPS and SNIPS weight
    ``w = t / p``), the target's distribution ``pi`` over arms and ``d = pi[a] / p`` (the DR
    weight). :func:`banditroute.learners.evaluation.doubly_robust` with the per-arm mean reward
    ``q`` as reward model has terms ``T = pi . q + d (r - q[a])``; since ``q`` is known only at
    the end, the sums of ``T`` and ``T^2`` are expanded into sums that do not depend on ``q``:
    per arm ``b`` and logged arm ``a``, ``sum pi(b)``, ``sum pi(b) pi(c)``, ``sum pi(b) d r``,
    ``sum_{a_i=a} pi(b) d``, and per logged arm the counts and sums of ``r``, ``d``, ``d^2``,
    ``d^2 r``.
    """

    def __init__(self) -> None:
        self.arms: dict[str, int] = {}
        self.n = 0
        # IPS / SNIPS
        self.w_pos = 0
        self.s_w = self.s_w2 = self.s_wr = self.s_w2r = self.s_w2r2 = 0.0
        # DR
        self.d_pos = 0
        self.s_dr = self.s_d2r2 = 0.0
        k = 0
        self.cnt = np.zeros(k)
        self.sum_r = np.zeros(k)
        self.sum_d = np.zeros(k)
        self.sum_d2 = np.zeros(k)
        self.sum_d2r = np.zeros(k)
        self.pi = np.zeros(k)
        self.pi_dr = np.zeros(k)
        self.pi_pi = np.zeros((k, k))
        self.pi_d = np.zeros((k, k))  # [b, a]: sum over logged arm a of pi(b) d

    def _grow(self, names: Iterable[str]) -> None:
        new = [a for a in names if a not in self.arms]
        if not new:
            return
        for a in new:
            self.arms[a] = len(self.arms)
        k, extra = len(self.arms), len(new)
        for name in ("cnt", "sum_r", "sum_d", "sum_d2", "sum_d2r", "pi", "pi_dr"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))
        for name in ("pi_pi", "pi_d"):
            m = np.zeros((k, k))
            old = getattr(self, name)
            m[: old.shape[0], : old.shape[1]] = old
            setattr(self, name, m)

    def add(self, groups: Sequence[Group]) -> None:
        """Add groups of logged decisions (negative sums retract)."""
        if not groups:
            return
        self._grow(sorted({a for g in groups for a in g.dist} | {g.model for g in groups}))
        k = len(self.arms)
        pi = np.zeros((len(groups), k))
        for i, g in enumerate(groups):
            for arm, prob in g.dist.items():
                pi[i, self.arms[arm]] = float(prob)
        a = np.asarray([self.arms[g.model] for g in groups], dtype=np.int64)
        sums = np.asarray([g.sums for g in groups], dtype=np.float64)
        n, sr, sr2, su, su2, sur, su2r, su2r2 = sums.T
        served = np.asarray([g.served for g in groups], dtype=bool)
        c = pi[np.arange(len(groups)), a]  # the target's probability of the logged arm
        pos = c > 0.0
        self.n += round(float(n.sum()))
        # IPS/SNIPS weight w = target / p: 1 on the variant's own decisions, c / p on others.
        sh = ~served
        self.w_pos += round(float(n[served].sum() + n[sh & pos].sum()))
        self.s_w += float(n[served].sum() + (c * su)[sh].sum())
        self.s_w2 += float(n[served].sum() + (c * c * su2)[sh].sum())
        self.s_wr += float(sr[served].sum() + (c * sur)[sh].sum())
        self.s_w2r += float(sr[served].sum() + (c * c * su2r)[sh].sum())
        self.s_w2r2 += float(sr2[served].sum() + (c * c * su2r2)[sh].sum())
        # DR weight d = pi[a] / p on every decision.
        self.d_pos += round(float(n[pos].sum()))
        self.s_dr += float((c * sur).sum())
        self.s_d2r2 += float((c * c * su2r2).sum())
        self.cnt += np.bincount(a, weights=n, minlength=k)
        self.sum_r += np.bincount(a, weights=sr, minlength=k)
        self.sum_d += np.bincount(a, weights=c * su, minlength=k)
        self.sum_d2 += np.bincount(a, weights=c * c * su2, minlength=k)
        self.sum_d2r += np.bincount(a, weights=c * c * su2r, minlength=k)
        self.pi += n @ pi
        self.pi_dr += (c * sur) @ pi
        self.pi_pi += (pi * n[:, None]).T @ pi
        onehot = np.zeros((len(groups), k))
        onehot[np.arange(len(groups)), a] = 1.0
        self.pi_d += (pi * (c * su)[:, None]).T @ onehot

    def estimates(self, confidence: float) -> tuple[Estimate, Estimate, Estimate] | None:
        """IPS, SNIPS and DR as :func:`banditroute.learners.evaluation.ips`, ``snips`` and
        ``doubly_robust`` give them on the included decisions (None if fewer than 2)."""
        n = self.n
        if n < 2:
            return None
        z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
        nan = math.nan

        def ess(total: float, total_sq: float) -> float:
            return 0.0 if total_sq == 0.0 else total * total / total_sq

        def mean_estimate(
            total: float, total_sq: float, e: float, pos: int, method: str
        ) -> Estimate:
            mean = total / n
            var = max(total_sq - n * mean * mean, 0.0) / (n - 1)
            se = math.sqrt(var) / math.sqrt(n)
            return Estimate(mean, mean - z * se, mean + z * se, n, pos, e, se, method, confidence)

        w_ess = ess(self.s_w, self.s_w2)
        ips = mean_estimate(self.s_wr, self.s_w2r2, w_ess, self.w_pos, "ips")
        if self.s_w == 0.0:
            snips = Estimate(nan, nan, nan, n, 0, 0.0, nan, "snips", confidence)
        else:
            v = self.s_wr / self.s_w
            mean_w = self.s_w / n
            resid = max(self.s_w2r2 - 2.0 * v * self.s_w2r + v * v * self.s_w2, 0.0)
            se = math.sqrt(resid) / mean_w / math.sqrt(n * max(n - 1, 1))
            snips = Estimate(
                v, v - z * se, v + z * se, n, self.w_pos, w_ess, se, "snips", confidence
            )
        overall = float(self.sum_r.sum()) / n
        q = np.where(self.cnt > 0, self.sum_r / np.where(self.cnt > 0, self.cnt, 1.0), overall)
        sum_t = float(self.pi @ q) + self.s_dr - float(q @ self.sum_d)
        sum_t2 = (
            float(q @ self.pi_pi @ q)
            + 2.0 * (float(q @ self.pi_dr) - float(q @ self.pi_d @ q))
            + self.s_d2r2
            - 2.0 * float(q @ self.sum_d2r)
            + float((q * q) @ self.sum_d2)
        )
        d_ess = ess(float(self.sum_d.sum()), float(self.sum_d2.sum()))
        dr = mean_estimate(sum_t, sum_t2, d_ess, self.d_pos, "dr")
        return ips, snips, dr


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
    cell = func.date_bin(CELL, c.created_at, literal(_EPOCH))
    hour = func.date_bin(HOUR, c.created_at, literal(_EPOCH))
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


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


class ExperimentSums:
    """The live sums of one experiment; see the module doc. :meth:`refresh` before reading."""

    def __init__(self, engine: Engine, view: ExperimentView, weights: RewardWeights) -> None:
        self.engine = engine
        self.name = view.name
        self.weights = weights
        self.targets = [
            _Target(v.name, shadow_key(v.policy, v.policy_version)) for v in view.variants
        ]
        self.shadow_keys = {
            t.key for t, v in zip(self.targets, view.variants, strict=True) if v.shadow
        }
        self.lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self.position: int | None = None  # None: not built
        self.variants: dict[str, VariantSums] = {}
        self.decisions: dict[str, int] = {}
        self.shadow_outcomes: dict[str, int] = {}
        self.shadow_decisions: dict[str, int] = {}  # settled part
        self._shadow_tail: dict[str, int] = {}
        self._stable = 0  # shadow decisions with ids <= this are in shadow_decisions
        self._marks: list[tuple[float, int]] = []  # (monotonic time, sequence value)
        self.cells: dict[tuple[str, datetime], Moments] = {}  # per variant and CELL
        self.hours: dict[tuple[str, datetime], Moments] = {}  # per variant and hour
        #: Realised spend (outcomes' cost_usd) per variant and hour of the decision.
        self.spend_hours: dict[tuple[str, datetime], float] = {}
        self.off_policy: dict[str, OffPolicySums] = {t.name: OffPolicySums() for t in self.targets}

    @property
    def ready(self) -> bool:
        """True once built."""
        return self.position is not None

    def refresh(self) -> None:
        """Apply every outcome and rating committed since the last refresh (the first builds)."""
        with self.lock:
            build = self.position is None
            after = self.position or 0
            with self.engine.connect() as conn:
                mark = conn.execute(_SEQUENCE).scalar()
                conn.commit()
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    upto = int(conn.execute(_POSITION).scalar() or 0)
                    upto = max(upto, after)
                    if not build and upto - after > REBUILD_AFTER_EVENTS:
                        self._reset()
                        return self.refresh()
                    rows: list[_Row] = []
                    parts: Sequence[Any] = ()
                    if build:
                        # One big statement: JIT compilation would cost more than it saves.
                        conn.execute(text("SET LOCAL jit = off"))
                        parts = (
                            conn.execute(
                                _build_query(self.weights),
                                {"after": 0, "upto": upto, "name": self.name},
                            )
                            .mappings()
                            .all()
                        )
                    elif upto > after:
                        rows = [
                            _Row(*r)
                            for r in conn.execute(
                                _changes_query(self.weights, build=False),
                                {"after": after, "upto": upto, "name": self.name},
                            )
                        ]
                    before = self.decisions
                    self.decisions = {
                        r[0]: int(r[1]) for r in conn.execute(_SERVED, {"name": self.name})
                    }
                    if any(n > self.decisions.get(v, 0) for v, n in before.items()):
                        # Decisions were deleted (retention dropped a partition): start over.
                        self._reset()
                        return self.refresh()
                    if self.shadow_keys:
                        self._count_shadow_decisions(conn, int(mark or 0))
            if build:
                self._apply_build(parts)
            self._apply(rows)
            self.position = upto

    def _apply_build(self, parts: Sequence[Any]) -> None:
        groups: dict[str, list[Group]] = {t.name: [] for t in self.targets}
        by_key = {t.key: t for t in self.targets}
        for p in parts:
            kind = p["part"]
            if kind == "v":
                v = self.variants.setdefault(p["variant"], VariantSums())
                v.outcomes += int(p["n0"])
                v.quality.merge(Moments(int(p["n1"]), p["f0"] or 0.0, p["f1"] or 0.0))
                v.cost.merge(Moments(int(p["n2"]), p["f2"] or 0.0, p["f3"] or 0.0))
                v.reward.merge(Moments(int(p["n3"]), p["f4"] or 0.0, p["f5"] or 0.0))
                v._pending.extend(float(x) for x in p["lat"] or ())
            elif kind == "c":
                m = Moments(int(p["n0"]), p["f0"], p["f1"])
                self.cells.setdefault((p["variant"], p["t"]), Moments()).merge(m)
                hour = (p["variant"], _floor(p["t"], HOUR))
                self.hours.setdefault(hour, Moments()).merge(m)
            elif kind == "m":
                at = (p["variant"], p["t"])
                self.spend_hours[at] = self.spend_hours.get(at, 0.0) + float(p["f0"])
            elif kind == "k":
                key = p["key"]
                self.shadow_outcomes[key] = self.shadow_outcomes.get(key, 0) + int(p["n0"])
            else:
                sums = (float(p["n0"]), *(float(p[f"f{i}"]) for i in range(7)))
                if kind == "s":
                    if p["variant"] in groups:
                        dist = dict(zip(p["cands"] or [], p["probs"] or [], strict=False))
                        groups[p["variant"]].append(Group(True, p["model"], dist, sums))
                else:
                    t = by_key.get(p["key"])
                    if t is not None and t.name != p["variant"]:
                        dist = p["dist"] or {}
                        groups[t.name].append(Group(False, p["model"], dist, sums))
        for t in self.targets:
            self.off_policy[t.name].add(groups[t.name])

    def _count_shadow_decisions(self, conn: Connection, mark: int) -> None:
        now = time.monotonic()
        self._marks.append((now, mark))
        settled = self._stable
        while self._marks and self._marks[0][0] <= now - SETTLE_S:
            settled = max(settled, self._marks.pop(0)[1])
        tail: dict[str, int] = {}
        for key, is_settled, n in conn.execute(
            _SHADOW_TAIL, {"name": self.name, "stable": self._stable, "settled": settled}
        ):
            if is_settled:
                self.shadow_decisions[key] = self.shadow_decisions.get(key, 0) + int(n)
            else:
                tail[key] = tail.get(key, 0) + int(n)
        self._stable = settled
        self._shadow_tail = tail

    def _apply(self, rows: Sequence[_Row]) -> None:
        groups: dict[str, list[Group]] = {t.name: [] for t in self.targets}
        for row in rows:
            if row.has_outcome and not row.had_outcome:
                self._outcome(row)
            if row.old == row.new:
                continue
            for sign, value in ((-1, row.old), (1, row.new)):
                if value is None:
                    continue
                v = self.variants.setdefault(row.variant, VariantSums())
                v.reward.add(value, sign)
                at = row.created_at
                self.cells.setdefault((row.variant, cell_of(at)), Moments()).add(value, sign)
                self.hours.setdefault((row.variant, _floor(at, HOUR)), Moments()).add(value, sign)
                for t in self.targets:
                    g = self._group(t, row, sign, value)
                    if g is not None:
                        groups[t.name].append(g)
        for t in self.targets:
            self.off_policy[t.name].add(groups[t.name])

    def _outcome(self, row: _Row) -> None:
        v = self.variants.setdefault(row.variant, VariantSums())
        v.outcomes += 1
        if row.base is not None:
            v.quality.add(row.base, 1)
        if row.cost is not None:
            v.cost.add(row.cost, 1)
            at = (row.variant, _floor(row.created_at, HOUR))
            self.spend_hours[at] = self.spend_hours.get(at, 0.0) + row.cost
        if row.latency is not None:
            v._pending.append(row.latency)
        for key in row.shadow or {}:
            self.shadow_outcomes[key] = self.shadow_outcomes.get(key, 0) + 1

    @staticmethod
    def _group(t: _Target, row: _Row, sign: int, value: float) -> Group | None:
        if row.variant == t.name:
            dist: Mapping[str, float] = dict(
                zip(row.candidates or [], row.probabilities or [], strict=False)
            )
            return row_group(True, row.model, dist, row.propensity, value, sign)
        if row.shadow and t.key in row.shadow:
            dist = row.shadow[t.key].get("probabilities") or {}
            return row_group(False, row.model, dist, row.propensity, value, sign)
        return None

    # -- reading ------------------------------------------------------------------------------
    def spend_between(self, start: datetime, end: datetime) -> dict[str, float]:
        """Realised spend per served variant of the decisions made in ``[start, end)``, both
        whole hours (every budget period is: ``ValueError`` otherwise)."""
        if _floor(start, HOUR) != start or _floor(end, HOUR) != end:
            raise ValueError("spend_between: start and end must be whole hours")
        out: dict[str, float] = {}
        for (variant, t), usd in self.spend_hours.items():
            if start <= t < end:
                out[variant] = out.get(variant, 0.0) + usd
        return out

    def shadow_counts(self) -> dict[str, tuple[int, int]]:
        """Decisions and outcomes per shadow key."""
        keys = set(self.shadow_decisions) | set(self._shadow_tail) | set(self.shadow_outcomes)
        return {
            k: (
                self.shadow_decisions.get(k, 0) + self._shadow_tail.get(k, 0),
                self.shadow_outcomes.get(k, 0),
            )
            for k in keys
        }

    def reward_buckets(
        self, since: datetime, stride: timedelta
    ) -> list[tuple[datetime | None, str, Moments]]:
        """Reward moments per bucket of ``stride`` from ``since`` (bucket None: everything
        before) and served variant, as ``date_bin(stride, decisions.created_at, epoch)`` buckets
        them; ``stride`` a multiple of :data:`CELL` and ``since`` on a bucket boundary
        (``ValueError`` otherwise). Read from the hourly cells when the buckets are whole
        hours, else from the :data:`CELL` ones."""
        if stride % CELL or _floor(since, stride) != since:
            raise ValueError("reward_buckets: stride must be whole cells, since a boundary")
        cells = self.hours if stride % HOUR == timedelta(0) else self.cells
        out: dict[tuple[datetime | None, str], Moments] = {}
        for (variant, t), m in cells.items():
            if not m.n:
                continue
            bucket = None if t < since else _floor(t, stride)
            out.setdefault((bucket, variant), Moments()).merge(m)
        return [
            (b, v, m)
            for (b, v), m in sorted(out.items(), key=lambda kv: (kv[0][0] is not None, kv[0]))
        ]


def _identity(engine: Engine, view: ExperimentView, weights: RewardWeights) -> tuple[Any, ...]:
    return (
        engine.url.render_as_string(hide_password=True),
        view.name,
        view.salt,
        view.created_at,
        weights,
        tuple((v.name, v.policy, v.policy_version, v.shadow) for v in view.variants),
    )


_CACHE: OrderedDict[tuple[Any, ...], ExperimentSums] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def live_sums(engine: Engine, view: ExperimentView, weights: RewardWeights) -> ExperimentSums:
    """The process's :class:`ExperimentSums` of ``view`` (created, not yet built, on first use)
    scored with ``weights``; refreshed by the caller."""
    key = _identity(engine, view, weights)
    with _CACHE_LOCK:
        sums = _CACHE.get(key)
        if sums is None:
            sums = _CACHE[key] = ExperimentSums(engine, view, weights)
        _CACHE.move_to_end(key)
        while len(_CACHE) > MAX_EXPERIMENTS:
            _CACHE.popitem(last=False)
    return sums


def forget_all() -> None:
    """Drop every kept experiment (tests)."""
    with _CACHE_LOCK:
        _CACHE.clear()
