"""Live per-variant statistics of an experiment, read from the decision and outcome tables.

Per served variant: decisions, outcomes, mean reward, mean quality (``quality``, else
``success`` as 1/0, 0 on error) and mean cost, each with an **always-valid** interval, p50/p95
latency of the chosen models, and the difference of mean reward against control with an
always-valid interval and p-value (mSPRT, :mod:`banditroute.learners.sequential`).

Money (issue #12): per served variant its spend (the sum of its outcomes' ``cost_usd``) and
spend per request (over its outcomes, as the route's controller counts requests); when the
route has a budget per period, the spend of the variant's decisions made in the current period
(calendar-aligned UTC, :func:`~banditroute.learners.pacing.period_bounds`) and its share of the
period's budget. The variants share the route's budget: the controller is one per route
(:mod:`banditroute.service.core.budgets`), whichever variant's policy chose. Looking at the
status as often as one likes does not inflate the error rate; a fixed-horizon t-test would.

Off-policy (``ips``, ``snips``, ``dr`` from :mod:`banditroute.learners.evaluation`): the value a
variant would have had serving 100% of the experiment's logged traffic, from the logged
propensities. For each logged decision with an outcome, the target probability of the logged model
is the decision's own propensity when the variant served it, or the probability its shadow scoring
logged in ``decisions.shadow``. So shadow variants are estimated on *all* the traffic; a served
variant (which learns only from its own traffic, keeping the A/B comparison clean) is
estimated on its own randomized slice, which is unbiased for the whole population because
assignment is random. DR uses a per-model mean-reward model. Every scored decision of the
experiment counts (before, the estimates read at most the 200,000 newest into Python).

Speed: these are all sums (the estimators' too, see
:class:`banditroute.service.experiments.live.OffPolicySums`), so each process keeps them per
experiment in :mod:`banditroute.service.experiments.live`, built once from the decisions and
advanced by the outcomes and ratings logged since; a status reads only what changed.
:func:`off_policy_estimates` and :func:`_scored` are the row-by-row definitions the tests
check the sums against.

Reward: every variant's outcomes are scored with one yardstick, the reward weights of the
control's policy version (:func:`yardstick`), by the rule of :mod:`banditroute.learners.reward`
written as SQL once (:mod:`banditroute.service.experiments.scoring`)
(quality, else success as 1/0, 0 on error, merged with the mean of the ratings received so far,
minus weighted cost and latency, clipped). So an experiment on new reward weights compares variants
on the same scale, and late feedback counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import CTE, Engine, and_, case, func, select, true

from banditroute.learners.evaluation import Estimate, doubly_robust, ips, snips
from banditroute.learners.pacing import period_bounds
from banditroute.learners.reward import RewardWeights
from banditroute.learners.sequential import (
    DEFAULT_TARGET_N,
    MeanSummary,
    difference,
    mean_interval,
)
from banditroute.service.experiments.guardrails import Observed
from banditroute.service.experiments.live import (
    ExperimentSums,
    Moments,
    VariantSums,
    live_sums,
    percentile_cont,
)
from banditroute.service.experiments.scoring import outcome_quality, reward
from banditroute.service.experiments.shadow import shadow_key
from banditroute.service.experiments.views import (
    ExperimentStatusView,
    ExperimentView,
    RouteBudgetView,
    VariantStatusView,
    VariantView,
)
from banditroute.service.storage.models import Decision, Feedback, Outcome, Policy, Route

__all__ = [
    "METHOD",
    "LoggedRow",
    "compute_status",
    "experiment_status",
    "experiment_status_and_rewards",
    "observed_by_variant",
    "off_policy_estimates",
    "route_budget",
    "yardstick",
]

#: Description of the statistical method, returned with every status.
METHOD = (
    "always-valid inference: mSPRT with a normal mixture (Johari et al. 2017, 'Always Valid "
    "Inference'; Howard et al. 2021 confidence sequences), mixture tuned for "
    f"n={DEFAULT_TARGET_N} per arm; intervals and p-values stay valid under continuous "
    "monitoring. Off-policy: IPS, SNIPS, DR on logged propensities (normal intervals)."
)


def _scored(experiment: str, weights: RewardWeights) -> CTE:
    """One row per decision of ``experiment`` with its outcome's quality (``base``), mean rating
    and reward under ``weights`` (NULL without outcome and rating), by
    :mod:`banditroute.service.experiments.scoring`: the rule of ``banditroute.learners.reward``."""
    d, o, f = Decision.__table__.c, Outcome.__table__.c, Feedback.__table__.c
    fb = (
        select(func.avg(f.rating).label("rating"))
        .where(f.decision_id == d.decision_id, f.decision_created_at == d.created_at)
        .lateral("fb")
    )
    outcome = and_(o.decision_id == d.decision_id, o.decision_created_at == d.created_at)
    joined = (
        select(
            d.variant,
            d.model,
            d.propensity,
            d.shadow,
            d.candidates,
            d.probabilities,
            d.event_id,
            d.created_at,
            o.event_id.label("outcome_id"),
            o.cost_usd,
            o.latency_ms,
            outcome_quality(o).label("base"),
            fb.c.rating,
        )
        .select_from(Decision.__table__.outerjoin(Outcome.__table__, outcome).outerjoin(fb, true()))
        .where(d.experiment == experiment)
        .cte("joined")
    )
    j = joined.c
    scored = case(
        (and_(j.outcome_id.is_(None), j.rating.is_(None)), None),
        else_=reward(j.base, j.rating, j.cost_usd, j.latency_ms, weights),
    )
    return select(joined, scored.label("reward")).cte("scored")


@dataclass(frozen=True)
class LoggedRow:
    """One logged decision with its outcome's reward (input of the off-policy estimates)."""

    variant: str
    model: str
    propensity: float
    reward: float
    shadow: Mapping[str, Any] | None
    distribution: Mapping[str, float]


def logged_rows(
    engine: Engine, experiment: str, weights: RewardWeights, limit: int | None = None
) -> list[LoggedRow]:
    """Every scored decision of ``experiment``, newest first (at most ``limit``), read into
    Python: the row-by-row path the live sums replaced, kept as their reference (tests) and
    as the benchmark's "before"."""
    sc = _scored(experiment, weights).c
    query = (
        select(sc.variant, sc.model, sc.propensity, sc.reward, sc.shadow, sc.candidates,
               sc.probabilities)
        .where(sc.reward.is_not(None))
        .order_by(sc.event_id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            LoggedRow(v, m, float(p), float(r), s, dict(zip(c or [], pr or [], strict=False)))
            for v, m, p, r, s, c, pr in conn.execute(query)
        ]


@dataclass(frozen=True)
class _Aggregate:
    decisions: int
    outcomes: int
    reward: MeanSummary
    quality: MeanSummary
    cost: MeanSummary
    p50: float
    p95: float
    #: Sum of the outcomes' cost_usd, and of those of the decisions made in the route's current
    #: budget period (NaN without a period budget).
    spend: float = 0.0
    period_spend: float = math.nan


def yardstick(engine: Engine, view: ExperimentView) -> RewardWeights:
    """Reward weights every variant is scored with: the control's policy version's (else the
    first served variant's), so variants that differ in reward weights stay comparable."""
    ref = view.control or next((v for v in view.variants if not v.shadow), None)
    if ref is None:
        return RewardWeights()
    with engine.connect() as conn:
        row = conn.execute(
            select(Policy.cost_weight, Policy.latency_weight, Policy.feedback_weight).where(
                Policy.name == ref.policy, Policy.version == ref.policy_version
            )
        ).first()
    if row is None:
        return RewardWeights()
    return RewardWeights(
        cost_weight=float(row[0]), latency_weight=float(row[1]), feedback_weight=float(row[2])
    )


def _aggregates_of(
    sums: ExperimentSums, budget: RouteBudgetView | None = None
) -> dict[str, _Aggregate]:
    """Per served variant with decisions: its :class:`_Aggregate` from the live sums (call
    with ``sums.lock`` held, after a refresh); the period spend over ``budget``'s period."""
    period = None
    if budget is not None and budget.period_start is not None and budget.period_end is not None:
        period = sums.spend_between(budget.period_start, budget.period_end)
    out: dict[str, _Aggregate] = {}
    for name, decisions in sums.decisions.items():
        v = sums.variants.get(name) or VariantSums()
        lat = v.sorted_latencies()
        out[name] = _Aggregate(
            decisions=decisions,
            outcomes=v.outcomes,
            reward=v.reward.summary,
            quality=v.quality.summary,
            cost=v.cost.summary,
            p50=percentile_cont(lat, 0.5),
            p95=percentile_cont(lat, 0.95),
            spend=v.cost.total,
            period_spend=math.nan if period is None else period.get(name, 0.0),
        )
    return out


def route_budget(engine: Engine, view: ExperimentView, now: datetime) -> RouteBudgetView | None:
    """The budget of ``view``'s route (None without one), with the UTC bounds of the period
    holding ``now`` when it is a budget per period (:func:`~banditroute.learners.pacing.
    period_bounds`, the pacer's calendar)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Route.budget_per_request_usd, Route.budget_usd, Route.budget_period).where(
                Route.tenant == view.tenant, Route.name == view.route
            )
        ).first()
    if row is None or (row[0] is None and row[1] is None):
        return None
    per_request, amount, period = row[0], row[1], row[2] or None
    start = end = None
    if amount is not None and period is not None:
        lo, hi = period_bounds(now.timestamp(), period)
        start, end = datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)
    return RouteBudgetView(
        None if per_request is None else float(per_request),
        None if amount is None else float(amount),
        period,
        start,
        end,
    )


def _refreshed(engine: Engine, view: ExperimentView, weights: RewardWeights) -> ExperimentSums:
    sums = live_sums(engine, view, weights)
    sums.refresh()
    return sums


def observed_by_variant(engine: Engine, view: ExperimentView) -> dict[str, Observed]:
    """Reward (under the :func:`yardstick`) and cost summaries of each served variant's
    outcomes: the guardrail's input."""
    sums = _refreshed(engine, view, yardstick(engine, view))
    with sums.lock:
        aggregates = _aggregates_of(sums)
    return {v: Observed(a.reward, a.cost) for v, a in aggregates.items()}


def off_policy_estimates(
    rows: Sequence[LoggedRow], variant: VariantView, confidence: float = 0.95
) -> tuple[Estimate, Estimate, Estimate] | None:
    """IPS, SNIPS and DR estimates of ``variant``'s value on the logged rows where its
    probability of the logged model is known (``None`` if there are fewer than 2).

    Examples
    --------
    >>> v = VariantView("t", "p", 1, 50.0, False, False)
    >>> rows = [LoggedRow("t", "a", 0.5, 1.0, None, {"a": 0.5, "b": 0.5}),
    ...         LoggedRow("t", "b", 0.5, 0.0, None, {"a": 0.5, "b": 0.5})]
    >>> [round(e.value, 3) for e in off_policy_estimates(rows, v)]
    [0.5, 0.5, 0.5]
    """
    key = shadow_key(variant.policy, variant.policy_version)
    rewards, props, targets, dists, models = [], [], [], [], []
    for r in rows:
        if r.variant == variant.name:
            target, dist = r.propensity, r.distribution
        elif r.shadow and key in r.shadow:
            dist = r.shadow[key].get("probabilities") or {}
            target = float(dist.get(r.model, 0.0))
        else:
            continue
        rewards.append(r.reward)
        props.append(r.propensity)
        targets.append(target)
        dists.append(dist)
        models.append(r.model)
    if len(rewards) < 2:
        return None
    arms = sorted({m for d in dists for m in d} | set(models))
    index = {a: i for i, a in enumerate(arms)}
    reward_arr = np.asarray(rewards)
    model_idx = np.asarray([index[m] for m in models])
    overall = float(reward_arr.mean())
    q_arm = np.full(len(arms), overall)
    for i in range(len(arms)):
        sel = model_idx == i
        if sel.any():
            q_arm[i] = float(reward_arr[sel].mean())
    pi = np.zeros((len(rewards), len(arms)))
    for row, dist in enumerate(dists):
        for a, p in dist.items():
            pi[row, index[a]] = float(p)
    q = np.tile(q_arm, (len(rewards), 1))
    return (
        ips(rewards, props, targets, confidence=confidence),
        snips(rewards, props, targets, confidence=confidence),
        doubly_robust(rewards, props, model_idx.tolist(), pi, q, confidence=confidence),
    )


_EMPTY = MeanSummary(0, math.nan, math.nan)


def compute_status(
    view: ExperimentView,
    aggregates: Mapping[str, _Aggregate],
    shadow_counts: Mapping[str, tuple[int, int]],
    estimates: Mapping[str, tuple[Estimate, Estimate, Estimate] | None],
    budget: RouteBudgetView | None = None,
) -> ExperimentStatusView:
    """Assemble the status from per-variant aggregates, shadow counts, off-policy estimates
    (IPS, SNIPS, DR per variant name) and the route's budget (pure)."""
    alpha = view.guardrail.alpha
    control = view.control
    base = aggregates.get(control.name) if control is not None else None
    out = []
    for v in view.variants:
        agg = aggregates.get(v.name)
        if v.shadow or agg is None:
            decisions, outcomes = (
                shadow_counts.get(shadow_key(v.policy, v.policy_version), (0, 0))
                if v.shadow
                else (0, 0)
            )
            agg = _Aggregate(decisions, outcomes, _EMPTY, _EMPTY, _EMPTY, math.nan, math.nan)
            spend = per_request = period_spend = share = math.nan
        else:
            spend = agg.spend
            per_request = agg.spend / agg.outcomes if agg.outcomes else math.nan
            period_spend = agg.period_spend
            share = math.nan
            if budget is not None and budget.budget_usd and math.isfinite(period_spend):
                share = period_spend / budget.budget_usd
        diff = None
        if base is not None and control is not None and v.name != control.name and not v.shadow:
            diff = difference(agg.reward, base.reward, alpha)
        est = estimates.get(v.name)
        out.append(
            VariantStatusView(
                variant=v,
                decisions=agg.decisions,
                outcomes=agg.outcomes,
                reward=mean_interval(agg.reward, alpha),
                quality=mean_interval(agg.quality, alpha),
                cost_usd=mean_interval(agg.cost, alpha),
                latency_p50_ms=agg.p50,
                latency_p95_ms=agg.p95,
                reward_diff_vs_control=diff,
                ips=est[0] if est else None,
                snips=est[1] if est else None,
                dr=est[2] if est else None,
                spend_usd=spend,
                spend_per_request_usd=per_request,
                period_spend_usd=period_spend,
                budget_share=share,
            )
        )
    return ExperimentStatusView(view, tuple(out), METHOD, budget)


def experiment_status(engine: Engine, view: ExperimentView) -> ExperimentStatusView:
    """The experiment's status from its live sums (:mod:`banditroute.service.experiments.live`:
    built from its decisions once per process, then advanced by the outcomes and ratings logged
    since the last call)."""
    return _status(engine, view, None)[0]


def experiment_status_and_rewards(
    engine: Engine, view: ExperimentView, since: datetime, stride: timedelta
) -> tuple[ExperimentStatusView, list[tuple[datetime | None, str, Moments]]]:
    """:func:`experiment_status` and, from the same sums, the reward moments (under the
    :func:`yardstick`) per bucket of ``stride`` from ``since`` (None: before) and served
    variant (:meth:`~banditroute.service.experiments.live.ExperimentSums.reward_buckets`):
    what the dashboard charts the difference over time from."""
    return _status(engine, view, (since, stride))


def _status(
    engine: Engine, view: ExperimentView, series: tuple[datetime, timedelta] | None
) -> tuple[ExperimentStatusView, list[tuple[datetime | None, str, Moments]]]:
    sums = _refreshed(engine, view, yardstick(engine, view))
    budget = route_budget(engine, view, datetime.now(UTC))
    confidence = 1.0 - view.guardrail.alpha
    with sums.lock:
        aggregates = _aggregates_of(sums, budget)
        shadow_counts = sums.shadow_counts()
        estimates = {
            v.name: sums.off_policy[v.name].estimates(confidence) for v in view.variants
        }
        buckets = sums.reward_buckets(*series) if series is not None else []
    return compute_status(view, aggregates, shadow_counts, estimates, budget), buckets
