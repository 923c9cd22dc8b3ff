"""What each dashboard page shows, read from PostgreSQL (and the live policies when given).

Pure data: :mod:`banditroute.service.dashboard.pages` turns these into HTML.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from banditroute.learners.sequential import Difference, MeanSummary, difference
from banditroute.learners.state import StateFormatError, loads
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.budgets import BudgetBook, status_fields
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.dashboard import queries as q
from banditroute.service.dashboard.rollup import HOUR, HourlyRollup, Sums
from banditroute.service.dashboard.windows import Window
from banditroute.service.errors import NotFound
from banditroute.service.experiments.live import CELL
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.stats import (
    experiment_status,
    experiment_status_and_rewards,
    yardstick,
)
from banditroute.service.experiments.views import ExperimentStatusView, ExperimentView

__all__ = [
    "ArmView",
    "BudgetView",
    "ExperimentPage",
    "NotFoundPage",
    "Overview",
    "PolicyStateView",
    "RoutePage",
    "experiment_page",
    "overview",
    "route_page",
]

log = logging.getLogger(__name__)


class NotFoundPage(LookupError):
    """The route or experiment a URL names does not exist (a 404 page)."""


@dataclass
class RouteTotals:
    """One route's traffic in a window."""

    sums: Sums = field(default_factory=Sums)
    by_model: dict[str, int] = field(default_factory=dict)

    @property
    def mean_reward(self) -> float:
        """Mean recorded reward of the window's outcomes (NaN with none)."""
        s = self.sums
        return s.reward_sum / s.outcomes if s.outcomes else math.nan


@dataclass(frozen=True)
class BudgetView:
    """A route's budget and where it stands now: the fields of ``banditroute routes status``
    (:func:`~banditroute.service.core.budgets.status_fields`) from this process's controller,
    or None when this process has none for it (no follower given, or not configured yet)."""

    budget: RouteBudget
    status: dict[str, Any] | None


@dataclass(frozen=True)
class Overview:
    """Every route's traffic in the window, and the experiments."""

    window: Window
    now: datetime
    routes: list[tuple[q.RouteInfo, RouteTotals]]
    experiments: list[ExperimentView]
    budgets: dict[tuple[str, str], BudgetView] = field(default_factory=dict)


@dataclass(frozen=True)
class ArmView:
    """Learnt state of one model in one policy version."""

    model: str
    updates: int
    mean_reward: float
    uncertainty: float
    active: bool


@dataclass(frozen=True)
class PolicyStateView:
    """A policy version's learnt state and where it came from."""

    policy: str
    version: int
    source: str
    last_event_id: int
    arms: list[ArmView]


@dataclass(frozen=True)
class RoutePage:
    """Everything the route page shows."""

    window: Window
    now: datetime
    route: q.RouteInfo
    labels: list[str]
    share: dict[str, list[float]]
    mean_reward: list[float | None]
    cost_per_request: list[float | None]
    versions: list[tuple[int, str]]
    totals: dict[str, Sums]
    policies: list[PolicyStateView]
    recent: list[q.DecisionRow]
    budget: BudgetView | None = None


@dataclass(frozen=True)
class DiffSeries:
    """Cumulative reward difference of one variant against control, bucket by bucket."""

    variant: str
    estimate: list[float | None]
    low: list[float | None]
    high: list[float | None]


@dataclass(frozen=True)
class ExperimentPage:
    """Everything the experiment page shows."""

    window: Window
    now: datetime
    status: ExperimentStatusView
    labels: list[str]
    diffs: list[DiffSeries] = field(default_factory=list)


def _label(t: datetime, window: Window) -> str:
    return t.strftime("%H:%M" if window.name in ("hour", "day") else "%m-%d %H:%M")


def _labels(window: Window, now: datetime) -> tuple[list[datetime], list[str]]:
    starts = window.bucket_starts(now)
    return starts, [_label(t, window) for t in starts]


def _traffic(
    engine: Engine,
    rollup: HourlyRollup | None,
    window: Window,
    now: datetime,
    *,
    tenant: str | None = None,
    route: str | None = None,
) -> list[q.BucketRow]:
    """The window's traffic per bucket: from the hourly rollup when the buckets are whole
    hours and it is built (after applying the events since its last refresh), else from the
    raw rows (the hour window, and while the rollup builds in the background)."""
    since = window.since(now)
    if rollup is not None and window.stride >= HOUR and window.stride % HOUR == timedelta(0):
        if rollup.ready:
            rollup.refresh()
            return rollup.rows(since, window.stride, tenant=tenant, route=route)
        rollup.start_building()
    with engine.connect() as conn:
        return q.decisions_by_bucket(conn, since, window.stride, tenant=tenant, route=route)


def budget_view(book: BudgetBook | None, route: q.RouteInfo, now: datetime) -> BudgetView | None:
    """``route``'s budget as the pages show it (None: it has no budget)."""
    if route.budget is None:
        return None
    status = book.status(route.tenant, route.name, now) if book is not None else None
    return BudgetView(route.budget, None if status is None else status_fields(status))


def overview(
    engine: Engine,
    window: Window,
    now: datetime,
    rollup: HourlyRollup | None = None,
    budgets: BudgetBook | None = None,
) -> Overview:
    """The overview page's data (``budgets``: this process's budget controllers)."""
    with engine.connect() as conn:
        routes = q.routes(conn)
    totals: dict[tuple[str, str], RouteTotals] = {}
    for r in _traffic(engine, rollup, window, now):
        t = totals.setdefault((r.tenant, r.route), RouteTotals())
        t.sums.add(r)
        t.by_model[r.model] = t.by_model.get(r.model, 0) + r.decisions
    known = {(r.tenant, r.name) for r in routes}
    rows = [(r, totals.get((r.tenant, r.name), RouteTotals())) for r in routes]
    # Traffic of a route deleted since still shows (it was served in this window).
    for (tenant, name), t in sorted(totals.items()):
        if (tenant, name) not in known:
            rows.append((q.RouteInfo(tenant, name, "", 0, ()), t))
    experiments = ExperimentManager(engine).list_experiments()
    shown = {
        (r.tenant, r.name): view for r, _ in rows if (view := budget_view(budgets, r, now))
    }
    return Overview(window, now, rows, experiments, shown)


def _arms(summary: dict[str, dict[str, Any]], totals: dict[str, Sums]) -> list[ArmView]:
    out = []
    for model, s in summary.items():
        n = int(s["updates"])
        mean = s["mean_reward"]
        t = totals.get(model)
        sd = math.sqrt(t.reward.variance) if t is not None and t.outcomes > 1 else math.nan
        out.append(
            ArmView(
                model=model,
                updates=n,
                mean_reward=math.nan if mean is None else float(mean),
                uncertainty=sd / math.sqrt(n) if n > 0 else math.nan,
                active=bool(s.get("active", True)),
            )
        )
    return out


def _policy_state(
    engine: Engine,
    registry: PolicyRegistry | None,
    key: PolicyKey,
    totals: dict[str, Sums],
) -> PolicyStateView | None:
    live = registry.get(key) if registry is not None else None
    if live is not None:
        try:
            summary = live.policy.summary()
            return PolicyStateView(
                key.name, key.version, "live", live.last_event_id, _arms(summary, totals)
            )
        except (IndexError, ValueError, RuntimeError):  # changed while read: use the snapshot
            pass
    with engine.connect() as conn:
        snap = q.latest_snapshot(conn, key.name, key.version)
    if snap is None:
        return None
    event_id, state = snap
    try:
        summary = loads(state).summary()
    except StateFormatError:
        log.warning("dashboard: unreadable snapshot of %s v%d", key.name, key.version)
        return None
    return PolicyStateView(key.name, key.version, "snapshot", event_id, _arms(summary, totals))


def route_page(
    engine: Engine,
    registry: PolicyRegistry | None,
    tenant: str,
    name: str,
    window: Window,
    now: datetime,
    rollup: HourlyRollup | None = None,
    budgets: BudgetBook | None = None,
) -> RoutePage:
    """The route page's data (:class:`NotFoundPage` for an unknown route; ``budgets``: this
    process's budget controllers)."""
    since = window.since(now)
    with engine.connect() as conn:
        found = q.routes(conn, tenant=tenant, name=name)
        if not found:
            raise NotFoundPage(f"no route {name!r} of tenant {tenant!r}")
        route = found[0]
        recent = q.recent_decisions(conn, tenant, name, since)
        configured = route.policy_version or q.latest_version(conn, route.policy)
    rows = _traffic(engine, rollup, window, now, tenant=tenant, route=name)
    starts, labels = _labels(window, now)
    index = q.bucket_index(starts)
    n = len(starts)
    models = sorted({r.model for r in rows} | set(route.models))
    counts = {m: [0] * n for m in models}
    per_bucket = [0] * n
    reward = [[0, 0.0] for _ in range(n)]
    cost = [[0, 0.0] for _ in range(n)]
    totals: dict[str, Sums] = {}
    first_seen: dict[PolicyKey, int] = {}
    for r in rows:
        totals.setdefault(r.model, Sums()).add(r)
        i = index.get(r.bucket)
        if i is None:
            continue
        counts[r.model][i] += r.decisions
        per_bucket[i] += r.decisions
        reward[i][0] += r.outcomes
        reward[i][1] += r.reward_sum
        cost[i][0] += r.cost_n
        cost[i][1] += r.cost_sum
        key = PolicyKey(r.policy, r.policy_version)
        first_seen[key] = min(first_seen.get(key, n), i)
    share = {
        m: [c / per_bucket[i] if per_bucket[i] else 0.0 for i, c in enumerate(cs)]
        for m, cs in counts.items()
        if any(cs)
    }
    keys = sorted({PolicyKey(route.policy, configured), *first_seen}) if route.policy else []
    policies = [p for k in keys if (p := _policy_state(engine, registry, k, totals)) is not None]
    return RoutePage(
        window=window,
        now=now,
        route=route,
        labels=labels,
        share=share,
        mean_reward=[s / c if c else None for c, s in reward],
        cost_per_request=[s / c if c else None for c, s in cost],
        versions=sorted((i, f"{k.name} v{k.version}") for k, i in first_seen.items()),
        totals=dict(sorted(totals.items())),
        policies=policies,
        recent=recent,
        budget=budget_view(budgets, route, now),
    )


def _diff_series(
    view: ExperimentView,
    buckets: list[q.VariantBucket],
    index: dict[datetime, int],
    n: int,
) -> list[DiffSeries]:
    control = view.control
    if control is None:
        return []
    alpha = view.guardrail.alpha
    sums: dict[str, list[float]] = {}
    per_bucket: dict[int, list[q.VariantBucket]] = {}
    for b in buckets:
        if b.bucket is None:
            s = sums.setdefault(b.variant, [0, 0.0, 0.0])
            s[0] += b.n
            s[1] += b.total
            s[2] += b.total_sq
        elif (i := index.get(b.bucket)) is not None:
            per_bucket.setdefault(i, []).append(b)
    treatments = [v.name for v in view.variants if not v.control and not v.shadow]
    est: dict[str, list[float | None]] = {v: [None] * n for v in treatments}
    low: dict[str, list[float | None]] = {v: [None] * n for v in treatments}
    high: dict[str, list[float | None]] = {v: [None] * n for v in treatments}
    for i in range(n):
        for b in per_bucket.get(i, []):
            s = sums.setdefault(b.variant, [0, 0.0, 0.0])
            s[0] += b.n
            s[1] += b.total
            s[2] += b.total_sq
        base = sums.get(control.name)
        if base is None:
            continue
        b_sum = MeanSummary.from_sums(int(base[0]), base[1], base[2])
        for v in treatments:
            a = sums.get(v)
            if a is None:
                continue
            d: Difference = difference(MeanSummary.from_sums(int(a[0]), a[1], a[2]), b_sum, alpha)
            est[v][i] = d.estimate if math.isfinite(d.estimate) else None
            low[v][i] = d.low if math.isfinite(d.low) else None
            high[v][i] = d.high if math.isfinite(d.high) else None
    return [DiffSeries(v, est[v], low[v], high[v]) for v in treatments]


def experiment_page(
    engine: Engine,
    name: str,
    window: Window,
    now: datetime,
) -> ExperimentPage:
    """The experiment page's data (:class:`NotFoundPage` for an unknown experiment)."""
    try:
        view = ExperimentManager(engine).get(name, events=True)
    except NotFound:
        raise NotFoundPage(f"no experiment {name!r}") from None
    starts, labels = _labels(window, now)
    since = window.since(now)
    if window.stride % CELL == timedelta(0):  # every window's: buckets of whole cells
        status, moments = experiment_status_and_rewards(engine, view, since, window.stride)
        buckets = [q.VariantBucket(b, v, m.n, m.total, m.total_sq) for b, v, m in moments]
    else:  # aggregate the raw rows
        status = experiment_status(engine, view)
        with engine.connect() as conn:
            buckets = q.experiment_rewards_by_bucket(
                conn, name, yardstick(engine, view), since, window.stride, started=view.created_at
            )
    diffs = _diff_series(view, buckets, q.bucket_index(starts), len(starts))
    return ExperimentPage(window, now, status, labels, diffs)
