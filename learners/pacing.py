"""Budget pacing: a Lagrangian controller that turns a money budget into a cost weight.

A route with a budget does not refuse requests; it prices cost. The policy scores the
candidates on quality, and the paced choice is ``argmax(score_a - w * cost_a)`` where
``cost_a`` is the candidate's estimated cost and ``w = lam / target`` (USD^-1) is the
controller's cost weight. ``lam`` is dimensionless (quality points per "one request's worth
of target spend") and follows projected dual ascent:

* at each decision, with estimated cost ``c_hat`` and per-request target ``B``:
  ``lam <- max(0, lam + step * (c_hat - B) / B)``;
* at each outcome with realised cost ``c``: ``lam <- max(0, lam + step * (c - c_hat) / B)``
  (the decision's estimate is replaced by what was actually spent).

Summed over a run, ``lam`` moves by ``step * sum(c - B) / B``; as ``lam`` stays bounded the
mean spend per request tends to ``B``.

The step decays with the requests seen, ``step / sqrt(1 + n / step_decay)``, down to
``step_min``: a new route reaches its target within a few hundred requests, and an
established one stops dithering. Each step moves ``lam`` by ``step * (c - B) / B``, so where
the budget is a small share of the dearest model's price one call to it moves ``lam`` by
several times its own size (on RouteLLM MMLU at 20 % of GPT-4's cost, a constant step of 0.01
kept the cost weight within +-35 % of its mean): choices made with a dithering weight mix
operating points and land below the fixed-weight curve.

Targets:

* ``budget_per_request_usd``: ``B`` is that amount;
* ``budget_usd`` per ``period`` (``hour``, ``day`` or ``month``, calendar-aligned UTC):
  ``B = remaining budget / (request rate * remaining time)``, the rate measured in the
  current period (or the last one at its start). With ``hard_cap``, a candidate whose
  estimated cost exceeds the period's remaining money is not chosen, and once nothing fits
  only the cheapest candidate is.

The controller is a pure function of the ordered ``(time, cost)`` events it is given: every
process that applies the same event log computes the same ``lam`` (and :meth:`get_state` /
:meth:`set_state` round-trip it exactly for snapshots). Time is whatever the caller passes
(seconds since the epoch, e.g. the decision's timestamp), so tests drive their own clock.

References
----------
Balseiro, Lu, Mirrokni (2020). *Dual mirror descent for online allocation problems.*
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from banditroute.learners._validation import check_bool, check_choice, check_float

__all__ = ["PERIODS", "BudgetPacer", "PacedChoice", "PacingStatus", "period_bounds"]

PERIODS = ("hour", "day", "month")
_STATE_VERSION = 1


def period_bounds(t: float, period: str) -> tuple[float, float]:
    """The calendar-aligned UTC ``[start, end)`` of the ``period`` holding time ``t``.

    Examples
    --------
    >>> period_bounds(3_600.5, "hour")
    (3600.0, 7200.0)
    >>> start, end = period_bounds(86_400 * 40, "month")  # 1970-02-10
    >>> datetime.fromtimestamp(start, UTC).date(), (end - start) / 86_400
    (datetime.date(1970, 2, 1), 28.0)
    """
    check_choice("period", period, PERIODS)
    when = datetime.fromtimestamp(check_float("t", t), UTC)
    if period == "hour":
        start = when.replace(minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 3_600.0
    if period == "day":
        start = when.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86_400.0
    start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start.timestamp(), start.timestamp() + days * 86_400.0


@dataclass(frozen=True, slots=True)
class PacedChoice:
    """The arm a paced decision takes and why.

    ``reason`` is ``""`` when the policy's own arm stands, ``"pacing"`` when the cost weight
    changed it and ``"cap"`` when the hard cap did. ``cost_weight`` is the weight (USD^-1)
    the choice used, the number a decision logs.
    """

    arm: str
    reason: str
    cost_weight: float


@dataclass(frozen=True, slots=True)
class PacingStatus:
    """Where a budget stands at time ``t`` (see :meth:`BudgetPacer.status`)."""

    lam: float
    cost_weight: float
    target_per_request_usd: float | None
    period_start: float | None
    period_end: float | None
    period_spend_usd: float
    period_requests: int
    budget_usd: float | None
    remaining_usd: float | None
    pace: float | None
    projected_spend_usd: float | None
    total_spend_usd: float
    total_requests: int


class BudgetPacer:
    """Dual-ascent budget pacing for one route (see the module docstring).

    Parameters
    ----------
    budget_per_request_usd
        Target mean spend per request (> 0), or ``None``.
    budget_usd
        Money per ``period`` (> 0), or ``None``; needs ``period``.
    period
        ``"hour"``, ``"day"`` or ``"month"`` (calendar-aligned UTC).
    hard_cap
        With ``budget_usd``: never choose a model the period's remaining money cannot pay.
    step
        Initial dual step size (> 0), in units of ``lam`` per request's worth of relative
        error.
    step_min
        Where the step's decay stops (> 0; at most ``step``).
    step_decay
        Requests over which the step's square halves (> 0).
    lam_max
        Upper bound on ``lam`` (> 0).

    When both budgets are set the per-request target is the smaller of the two.

    Examples
    --------
    >>> pacer = BudgetPacer(budget_per_request_usd=0.01, step=0.05)
    >>> scores, costs = {"cheap": 0.6, "dear": 0.9}, {"cheap": 0.001, "dear": 0.05}
    >>> pacer.choose(scores, costs, "dear", t=0.0).arm   # lam = 0: the policy's choice
    'dear'
    >>> for i in range(40):
    ...     choice = pacer.choose(scores, costs, "dear", t=float(i))
    ...     pacer.on_decision(float(i), costs[choice.arm])
    >>> choice.arm, choice.reason, round(pacer.lam, 3) > 0
    ('cheap', 'pacing', True)
    >>> BudgetPacer(budget_usd=-1.0, period="day")
    Traceback (most recent call last):
    ...
    ValueError: budget_usd must be > 0.0, got -1.0
    """

    def __init__(
        self,
        *,
        budget_per_request_usd: float | None = None,
        budget_usd: float | None = None,
        period: str | None = None,
        hard_cap: bool = False,
        step: float = 0.02,
        step_min: float = 0.002,
        step_decay: float = 100.0,
        lam_max: float = 100.0,
    ) -> None:
        self.budget_per_request_usd = (
            None if budget_per_request_usd is None
            else check_float("budget_per_request_usd", budget_per_request_usd, low=0.0,
                             low_open=True))
        self.budget_usd = (
            None if budget_usd is None
            else check_float("budget_usd", budget_usd, low=0.0, low_open=True))
        self.period = None if period is None else check_choice("budget_period", period, PERIODS)
        self.hard_cap = check_bool("hard_cap", hard_cap)
        self.step = check_float("step", step, low=0.0, low_open=True)
        self.step_min = min(check_float("step_min", step_min, low=0.0, low_open=True),
                            self.step)
        self.step_decay = check_float("step_decay", step_decay, low=0.0, low_open=True)
        self.lam_max = check_float("lam_max", lam_max, low=0.0, low_open=True)
        if (self.budget_usd is None) != (self.period is None):
            raise ValueError("budget_usd and budget_period must be given together")
        if self.hard_cap and self.budget_usd is None:
            raise ValueError("hard_cap needs budget_usd and budget_period")
        if self.budget_usd is None and self.budget_per_request_usd is None:
            raise ValueError("give budget_per_request_usd or budget_usd with budget_period")
        self.lam = 0.0
        self._target: float | None = self.budget_per_request_usd
        self._start: float | None = None
        self._end: float | None = None
        self._spend = 0.0
        self._requests = 0
        self._last_rate: float | None = None
        self._total_spend = 0.0
        self._total_requests = 0

    # ------------------------------------------------------------------ decisions
    def cost_weight(self, t: float) -> float:
        """The cost weight ``lam / B`` (USD^-1) a decision at time ``t`` uses."""
        target = self._per_request_target(check_float("t", t))
        if target is None:
            return 0.0
        return self.lam / target

    def choose(self, scores: Mapping[str, float], costs: Mapping[str, float], chosen: str,
               *, t: float, unapplied: Iterable[tuple[float, float]] = ()) -> PacedChoice:
        """The paced arm among ``scores``' candidates, given each one's estimated cost.

        ``chosen`` is the policy's own arm; it stands unless the cost weight or the cap
        moves the argmax of ``score - w * cost``. ``unapplied``: ``(time, cost)`` of spend
        already acknowledged but not yet given to :meth:`on_decision`; the hard cap counts
        the part that falls in ``t``'s period (the cost weight does not: it stays a function
        of the events applied).
        """
        weight = self.cost_weight(t)
        names = [a for a in scores if a in costs]
        if chosen not in names:
            return PacedChoice(chosen, "", weight)
        allowed = names
        if self.hard_cap and self.budget_usd is not None:
            remaining = self.budget_usd - self._period_spend(t, unapplied)
            fits = [a for a in names if costs[a] <= remaining]
            cheapest = min(names, key=lambda a: (costs[a], -scores[a]))
            allowed = fits or [cheapest]
        if weight <= 0.0 and chosen in allowed:
            return PacedChoice(chosen, "", weight)
        best = max(allowed, key=lambda a: scores[a] - weight * costs[a])
        if chosen in allowed and (scores[chosen] - weight * costs[chosen]
                                  >= scores[best] - weight * costs[best]):
            return PacedChoice(chosen, "", weight)
        return PacedChoice(best, "pacing" if chosen in allowed else "cap", weight)

    def on_decision(self, t: float, estimated_cost: float) -> None:
        """Account one decision at time ``t`` with estimated cost; one dual step."""
        t = check_float("t", t)
        cost = check_float("estimated_cost", estimated_cost, low=0.0)
        self._roll(t)
        target = self._per_request_target(t)
        self._requests += 1
        self._total_requests += 1
        self._spend += cost
        self._total_spend += cost
        if target is not None:
            self._move((cost - target) / target)

    def on_outcome(self, t: float, estimated_cost: float, realised_cost: float) -> None:
        """Replace a decision's estimated cost by its realised cost (outcome at ``t``)."""
        t = check_float("t", t)
        delta = (check_float("realised_cost", realised_cost, low=0.0)
                 - check_float("estimated_cost", estimated_cost, low=0.0))
        self._roll(t)
        self._spend = max(0.0, self._spend + delta)
        self._total_spend = max(0.0, self._total_spend + delta)
        target = self._per_request_target(t)
        if target is not None:
            self._move(delta / target)

    # ------------------------------------------------------------------ reporting
    def status(self, t: float) -> PacingStatus:
        """Spend, target, pace and projected end-of-period spend at time ``t``.

        ``pace`` is the period's spend over the spend a uniform rate would have reached by
        now (1.0 = on pace); the projection extrapolates the period's spend rate.
        """
        t = check_float("t", t)
        start, end, spend, requests = self._start, self._end, self._spend, self._requests
        if self.period is not None and (start is None or end is None or t >= end):
            start, end = period_bounds(t, self.period)
            if self._end is None or t >= self._end:
                spend, requests = 0.0, 0
        remaining = pace = projected = None
        if self.budget_usd is not None and start is not None and end is not None:
            remaining = self.budget_usd - spend
            elapsed = max(t - start, 0.0)
            share = elapsed / (end - start)
            pace = spend / (self.budget_usd * share) if share > 0 else None
            projected = spend / share if share > 0 else None
        return PacingStatus(
            lam=self.lam, cost_weight=self.cost_weight(t),
            target_per_request_usd=self._per_request_target(t),
            period_start=start, period_end=end, period_spend_usd=spend,
            period_requests=requests, budget_usd=self.budget_usd, remaining_usd=remaining,
            pace=pace, projected_spend_usd=projected, total_spend_usd=self._total_spend,
            total_requests=self._total_requests)

    def get_state(self) -> dict[str, Any]:
        """The learned state (plain floats and ints; JSON-serialisable)."""
        return {"version": _STATE_VERSION, "lam": self.lam, "start": self._start,
                "end": self._end, "spend": self._spend, "requests": self._requests,
                "last_rate": self._last_rate, "total_spend": self._total_spend,
                "total_requests": self._total_requests}

    def set_state(self, state: Mapping[str, Any]) -> BudgetPacer:
        """Restore :meth:`get_state`'s output; returns ``self``."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"state: unknown pacing state version {state.get('version')!r}")
        self.lam = float(state["lam"])
        self._start, self._end = state["start"], state["end"]
        self._spend, self._requests = float(state["spend"]), int(state["requests"])
        self._last_rate = state["last_rate"]
        self._total_spend = float(state["total_spend"])
        self._total_requests = int(state["total_requests"])
        return self

    # ------------------------------------------------------------------ internals
    def _period_spend(self, t: float, unapplied: Iterable[tuple[float, float]]) -> float:
        """The spend of ``t``'s period: applied (none yet when ``t`` opens a new period)
        plus the ``unapplied`` costs whose time falls in it."""
        assert self.period is not None
        if self._start is not None and self._end is not None and self._start <= t < self._end:
            start, end, spend = self._start, self._end, self._spend
        else:
            (start, end), spend = period_bounds(t, self.period), 0.0
        return spend + sum(cost for when, cost in unapplied if start <= when < end)

    def _move(self, error: float) -> None:
        step = max(self.step_min,
                   self.step / math.sqrt(1.0 + self._total_requests / self.step_decay))
        self.lam = min(max(0.0, self.lam + step * error), self.lam_max)

    def _roll(self, t: float) -> None:
        """Enter the period holding ``t`` (a new one resets the period's spend)."""
        if self.period is None:
            return
        if self._end is not None and self._start is not None and t < self._end:
            return
        if self._start is not None and self._end is not None and self._requests:
            self._last_rate = self._requests / (self._end - self._start)
        self._start, self._end = period_bounds(t, self.period)
        self._spend, self._requests = 0.0, 0

    def _per_request_target(self, t: float) -> float | None:
        period_target = None
        if self.budget_usd is not None and self._start is not None and self._end is not None:
            remaining_time = self._end - max(t, self._start)
            elapsed = max(t - self._start, 0.0)
            rate = self._last_rate
            # the period's own rate once it has seen a few requests over a fair share of time
            if self._requests >= 10 and elapsed > 0:
                rate = self._requests / elapsed
            remaining_money = max(self.budget_usd - self._spend, 0.0)
            if rate is not None and rate > 0 and remaining_time > 0:
                expected = max(rate * remaining_time, 1.0)
                period_target = max(remaining_money / expected, 1e-12)
        targets = [v for v in (self.budget_per_request_usd, period_target) if v is not None]
        if not targets:
            return None
        return min(targets)
