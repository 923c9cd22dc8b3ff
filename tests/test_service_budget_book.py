"""BudgetBook: the hard cap counts acknowledged spend before the follower applies it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from banditroute.service.core.budgets import BudgetBook
from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.storage.events import LearningEvent

HOUR = datetime(2026, 11, 30, 12, tzinfo=UTC)
SCORES = {"small": 0.5, "large": 0.9}
COSTS = {"small": 0.0002, "large": 0.02}


def _book(hard_cap: bool = True) -> BudgetBook:
    entry = SimpleNamespace(tenant="", name="capped", budget=RouteBudget(
        budget_usd=0.05, budget_period="hour", budget_hard_cap=hard_cap))
    routes = {("", "capped"): entry}
    book = BudgetBook()
    book.configure(SimpleNamespace(routes=routes, route=lambda t, n: routes.get((t, n))))
    return book


def _outcome(event_id: int, cost: float, at: datetime) -> LearningEvent:
    return LearningEvent(
        event_id=event_id, kind="outcome", decision_id=uuid.uuid4(), decision_created_at=at,
        tenant="", route="capped", policy_name="p", policy_version=1, experiment=None,
        variant=None, model="large", candidates=("small", "large"), propensity=1.0,
        features=None, shadow=None, outcome_event_id=event_id, quality=1.0, success=True,
        input_tokens=None, output_tokens=None, cost_usd=cost, latency_ms=None, error=None,
        reward=1.0, rating=None, source=None, prior_ratings=())


def _arm(book: BudgetBook, now: datetime) -> str:
    choice = book.choose("", "capped", SCORES, COSTS, "large", now)
    assert choice is not None
    return choice.arm


def test_acknowledged_spend_counts_at_once_and_once() -> None:
    book, now = _book(), HOUR + timedelta(minutes=5)
    book.apply(_outcome(1, 0.02, HOUR + timedelta(minutes=1)))
    assert _arm(book, now) == "large"  # 0.03 left
    book.acknowledge(2, "", "capped", HOUR + timedelta(minutes=2), 0.02)
    assert _arm(book, now) == "small"  # 0.01 left once the acknowledged 0.02 counts
    book.apply(_outcome(2, 0.02, HOUR + timedelta(minutes=2)))  # the follower catches up
    assert _arm(book, now) == "small"
    assert book.status("", "capped", now).period_spend_usd == 0.04  # type: ignore[union-attr]
    # an acknowledgement the follower has already passed is not counted a second time
    book.acknowledge(2, "", "capped", HOUR + timedelta(minutes=2), 0.02)
    lam_before = book.status("", "capped", now).lam  # type: ignore[union-attr]
    assert book.status("", "capped", now).period_spend_usd == 0.04  # type: ignore[union-attr]
    assert book.status("", "capped", now).lam == lam_before  # type: ignore[union-attr]


def test_acknowledged_spend_is_ignored_without_a_cap_or_route() -> None:
    book, now = _book(hard_cap=False), HOUR + timedelta(minutes=5)
    book.acknowledge(7, "", "capped", HOUR, 1.0)
    book.acknowledge(8, "", "elsewhere", HOUR, 1.0)
    assert _arm(book, now) == "large"


def test_acknowledgements_out_of_event_order_are_not_counted_once_applied() -> None:
    book, now = _book(), HOUR + timedelta(minutes=5)
    book.acknowledge(5, "", "capped", HOUR, 0.01)
    book.acknowledge(3, "", "capped", HOUR, 0.02)  # committed later, with a lower id
    book.apply(_outcome(3, 0.02, HOUR))  # the follower has passed 3, not 5
    assert _arm(book, now) == "large"  # 0.02 applied + 0.01 unapplied: 0.02 left, not 0
    book.apply(_outcome(5, 0.01, HOUR))
    assert _arm(book, now) == "large"  # 0.03 applied, nothing counted twice
    book.acknowledge(6, "", "capped", HOUR, 0.015)
    assert _arm(book, now) == "small"  # 0.005 left
