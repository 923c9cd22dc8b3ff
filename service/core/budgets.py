"""Every route's budget controller, computed from the event log.

:class:`BudgetBook` holds one :class:`~banditroute.learners.pacing.BudgetPacer` per route that
has a budget. The follower applies each outcome event to it in log order (time = the
decision's ``created_at``, spend = the outcome's ``cost_usd``): the pacer's estimate at
decision time and its correction at the outcome sum to one dual step on the realised cost, so
the controller needs outcomes only. A pacer is a pure function of its route's budget and the
ordered outcomes of its route; when a route gains or changes a budget (and when a process
starts) it is rebuilt by folding the log up to the follower's position, so every process and
every restart computes the same cost weight.

Route asks :meth:`BudgetBook.choose` for the paced arm; the decision logs the cost weight it
used (``decisions.pacing_cost_weight``) and whether pacing or the cap changed the choice.

The hard cap must also see money that is spent but not in the log this process has applied
yet: an outcome this process acknowledged a moment ago (a sequential caller's next Route can
arrive before the follower applies it). :meth:`BudgetBook.acknowledge` notes such spend by
event id until the follower passes that id; the cap counts it, the cost weight does not (it
stays a function of the applied log). Spend acknowledged by another process reaches this one
through the log only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from banditroute.learners.base import Decision
from banditroute.learners.pacing import BudgetPacer, PacedChoice, PacingStatus
from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.storage.events import LearningEvent

__all__ = ["BudgetBook", "paced_decision", "status_fields"]

RouteKey = tuple[str, str]
_MAX_UNAPPLIED = 100_000


class BudgetBook:
    """The pacers of one process's routes (see the module docstring)."""

    def __init__(self, clock: Callable[[float], float] | None = None) -> None:
        self._budgets: dict[RouteKey, RouteBudget] = {}
        self._pacers: dict[RouteKey, BudgetPacer] = {}
        self._resolve: Any = None
        #: Spend acknowledged here, not yet applied: event id -> (route, budget time, cost).
        self._unapplied: dict[int, tuple[RouteKey, float, float]] = {}
        self._position = 0  # the last event id applied
        #: Maps a wall-clock time (epoch seconds) to budget time; None = identity. Tests
        #: compress a period with it (every process of a deployment must use the same one).
        self.clock = clock

    def _t(self, when: datetime) -> float:
        t = when.timestamp()
        return t if self.clock is None else float(self.clock(t))

    def configure(self, config: Any) -> list[RouteKey]:
        """Adopt ``config``'s route budgets; returns the routes whose pacer is new (to be
        rebuilt from the log with :meth:`rebuild`)."""
        self._resolve = config.route
        budgets = {key: entry.budget for key, entry in config.routes.items()
                   if entry.budget is not None}
        fresh = [key for key, budget in budgets.items() if self._budgets.get(key) != budget]
        self._budgets = budgets
        self._pacers = {key: pacer for key, pacer in self._pacers.items() if key in budgets
                        and key not in fresh}
        for key in fresh:
            self._pacers[key] = budgets[key].pacer()
        return fresh

    def rebuild(self, keys: Iterable[RouteKey], events: Iterable[LearningEvent]) -> None:
        """Fold ``events`` (the log up to the follower's position, in order) into the pacers
        of ``keys`` (just created by :meth:`configure`)."""
        wanted = set(keys)
        if not wanted:
            return
        for ev in events:
            key = self._key_of(ev)
            if key in wanted:
                self._step(self._pacers[key], ev)

    def apply(self, ev: LearningEvent) -> None:
        """Apply one event of the log (the follower calls this in log order)."""
        self._position = position = max(self._position, ev.event_id)
        unapplied = self._unapplied
        # oldest first: this process acknowledges its outcomes in event-id order, so the
        # entries the follower has passed sit at the front (any left behind a later one are
        # not counted by choose and go when they reach the front)
        while unapplied and (first := next(iter(unapplied))) <= position:
            del unapplied[first]
        if not self._pacers:
            return
        key = self._key_of(ev)
        pacer = self._pacers.get(key) if key is not None else None
        if pacer is not None:
            self._step(pacer, ev)

    def acknowledge(self, event_id: int, tenant: str | None, route: str | None,
                    decision_created_at: datetime, cost_usd: float) -> None:
        """Note an outcome this process committed (``event_id``) before the follower applies
        it, so that the hard cap counts its cost at once (see the module docstring)."""
        if event_id <= self._position or self._resolve is None or route is None:
            return
        entry = self._resolve(tenant or "", route)
        if entry is None or entry.budget is None or not entry.budget.budget_hard_cap:
            return
        if len(self._unapplied) >= _MAX_UNAPPLIED:  # the follower is stuck: keep the newest
            del self._unapplied[next(iter(self._unapplied))]
        key = (entry.tenant, entry.name)
        self._unapplied[event_id] = (key, self._t(decision_created_at), max(cost_usd, 0.0))

    def choose(self, tenant: str, route: str, scores: Mapping[str, float],
               costs: Mapping[str, float], chosen: str, now: datetime) -> PacedChoice | None:
        """The paced choice for a decision of ``route`` (None: the route has no budget)."""
        key = (tenant, route)
        pacer = self._pacers.get(key)
        if pacer is None:
            return None
        unapplied: list[tuple[float, float]] = []
        if pacer.hard_cap and self._unapplied:  # only the cap counts them (Route's hot path)
            position = self._position
            unapplied = [(t, cost) for event_id, (k, t, cost) in self._unapplied.items()
                         if k == key and event_id > position]
        return pacer.choose(scores, costs, chosen, t=self._t(now), unapplied=unapplied)

    def status(self, tenant: str, route: str, now: datetime) -> PacingStatus | None:
        """Where ``route``'s budget stands (None: no budget)."""
        pacer = self._pacers.get((tenant, route))
        return None if pacer is None else pacer.status(self._t(now))

    def statuses(self, now: datetime) -> dict[RouteKey, PacingStatus]:
        """Every budgeted route's status."""
        t = self._t(now)
        return {key: pacer.status(t) for key, pacer in self._pacers.items()}

    def _key_of(self, ev: LearningEvent) -> RouteKey | None:
        if ev.kind != "outcome" or ev.route is None or self._resolve is None:
            return None
        entry = self._resolve(ev.tenant or "", ev.route)
        return None if entry is None else (entry.tenant, entry.name)

    def _step(self, pacer: BudgetPacer, ev: LearningEvent) -> None:
        cost = ev.cost_usd if ev.cost_usd is not None and ev.cost_usd >= 0 else 0.0
        pacer.on_decision(self._t(ev.decision_created_at), float(cost))


def status_fields(status: PacingStatus) -> dict[str, Any]:
    """Where a route's budget stands, by name: what ``banditroute routes status --json``
    prints and the dashboard's route page shows (times as ISO 8601 UTC, None where a field
    does not apply, e.g. a period for a per-request budget)."""

    def iso(t: float | None) -> str | None:
        return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()

    return {
        "period_start": iso(status.period_start), "period_end": iso(status.period_end),
        "period_spend_usd": status.period_spend_usd,
        "period_requests": status.period_requests,
        "remaining_usd": status.remaining_usd,
        "target_per_request_usd": status.target_per_request_usd,
        "pace": status.pace, "lambda": status.lam, "cost_weight": status.cost_weight,
        "projected_spend_usd": status.projected_spend_usd,
        # the period's money is gone: the target falls to its floor (1e-12) and the cost
        # weight soars (the hard cap, if set, allows only the cheapest model)
        "period_budget_spent": status.remaining_usd is not None and status.remaining_usd <= 0,
        "total_spend_usd": status.total_spend_usd,
        "total_requests": status.total_requests,
        "mean_spend_per_request_usd": (status.total_spend_usd / status.total_requests
                                       if status.total_requests else None)}


def paced_decision(book: BudgetBook | None, route: Any, decision: Decision,
                   costs: Mapping[str, float], now: datetime) -> tuple[Decision, str, float]:
    """``decision`` after ``route``'s budget: ``(decision, reason, cost_weight)``.

    Without a budget the decision is unchanged (reason "", weight 0). When pacing or the cap
    moves the choice, the new arm leads the ranking and its propensity is 1.0: given the
    policy's scores and the logged cost weight the paced choice is deterministic.
    """
    if book is None:
        return decision, "", 0.0
    paced = book.choose(route.tenant, route.name, decision.scores, costs, decision.arm, now)
    if paced is None:
        return decision, "", 0.0
    if not paced.reason or paced.arm == decision.arm:
        return decision, "", paced.cost_weight
    ranking = [paced.arm, *(a for a in decision.ranking if a != paced.arm)]
    probabilities = {a: (1.0 if a == paced.arm else 0.0) for a in decision.probabilities}
    moved = Decision(paced.arm, 1.0, decision.scores, probabilities, ranking)
    return moved, paced.reason, paced.cost_weight
