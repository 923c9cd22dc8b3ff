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
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    text,
)

from banditroute.learners.reward import RewardWeights
from banditroute.service.experiments.live_sql import (
    _POSITION,
    _SEQUENCE,
    _SERVED,
    _SHADOW_TAIL,
    _build_query,
    _changes_query,
    _Row,
    _Target,
)
from banditroute.service.experiments.shadow import shadow_key
from banditroute.service.experiments.sums import (
    CELL,
    HOUR,
    Group,
    Moments,
    OffPolicySums,
    VariantSums,
    cell_of,
    floor_to,
    percentile_cont,
    row_group,
)
from banditroute.service.experiments.views import ExperimentView

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

#: Decision ids read this long ago are taken as committed (see the module doc).
SETTLE_S = 60.0
#: Experiments whose sums one process keeps (least recently used dropped first).
MAX_EXPERIMENTS = 64
#: A refresh that would read the events of more ids than this (outcomes and ratings of every
#: experiment, say after days without a view) rebuilds from the experiment's decisions instead.
REBUILD_AFTER_EVENTS = 500_000


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
                hour = (p["variant"], floor_to(p["t"], HOUR))
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
                self.hours.setdefault((row.variant, floor_to(at, HOUR)), Moments()).add(value, sign)
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
            at = (row.variant, floor_to(row.created_at, HOUR))
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
        if floor_to(start, HOUR) != start or floor_to(end, HOUR) != end:
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
        if stride % CELL or floor_to(since, stride) != since:
            raise ValueError("reward_buckets: stride must be whole cells, since a boundary")
        cells = self.hours if stride % HOUR == timedelta(0) else self.cells
        out: dict[tuple[datetime | None, str], Moments] = {}
        for (variant, t), m in cells.items():
            if not m.n:
                continue
            bucket = None if t < since else floor_to(t, stride)
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
