"""BudgetPacer: per-request and period budgets, the hard cap, determinism, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from banditroute.learners.pacing import BudgetPacer, period_bounds

QUALITY = {"small": 0.55, "medium": 0.7, "large": 0.9}
COST = {"small": 0.0002, "medium": 0.002, "large": 0.02}


def _drive(pacer: BudgetPacer, times: np.ndarray, seed: int = 0,
           in_flight: int = 0) -> list[float]:
    """Route one request per time; outcomes (realised cost = estimate * noise) arrive
    ``in_flight`` requests later. Returns the realised cost of each request."""
    rng = np.random.default_rng(seed)
    spent: list[float] = []
    pending: list[tuple[float, float]] = []
    for t in times:
        scores = {a: q + rng.normal(0, 0.05) for a, q in QUALITY.items()}
        chosen = max(scores, key=scores.__getitem__)
        arm = pacer.choose(scores, COST, chosen, t=float(t)).arm
        pacer.on_decision(float(t), COST[arm])
        real = COST[arm] * float(rng.uniform(0.8, 1.2))
        pending.append((COST[arm], real))
        spent.append(real)
        while len(pending) > in_flight:
            est, cost = pending.pop(0)
            pacer.on_outcome(float(t), est, cost)
    return spent


def test_pacer_per_request_mean_cost_tracks_budget() -> None:
    budget = 0.004
    pacer = BudgetPacer(budget_per_request_usd=budget, step=0.02)
    spent = _drive(pacer, np.arange(4000.0))
    late = float(np.mean(spent[1000:]))
    assert 0.95 * budget <= late <= 1.05 * budget


def test_pacer_hour_budget_ends_within_five_percent() -> None:
    """An hour with a request every 0.5 s (7,200 requests); spend ends within +-5%."""
    budget = 20.0
    pacer = BudgetPacer(budget_usd=budget, period="hour", step=0.02)
    start = 1_700_000_000.0 - 1_700_000_000.0 % 3600
    times = start - 3600 + np.arange(0, 7200) * 0.5  # one hour before, to learn the rate
    _drive(pacer, times)
    spent = _drive(pacer, start + np.arange(0, 7200) * 0.5, seed=1)
    assert 0.95 * budget <= sum(spent) <= 1.05 * budget
    assert pacer.status(start + 3599.0).period_requests == 7200


@pytest.mark.parametrize("in_flight", [0, 4], ids=["sequential", "four-in-flight"])
def test_pacer_hard_cap_overspends_at_most_one_request_per_in_flight(in_flight: int) -> None:
    budget = 1.0
    pacer = BudgetPacer(budget_usd=budget, period="hour", hard_cap=True, step=0.02)
    start = 1_700_000_000.0 - 1_700_000_000.0 % 3600
    # far more demand than money: the cap, not the pacing, has to hold it
    spent = _drive(pacer, start + np.arange(0, 3000) * 1.0, in_flight=in_flight)
    paid_above_cheapest = sum(spent) - len(spent) * COST["small"] * 1.2
    assert paid_above_cheapest <= budget + (in_flight + 1) * max(COST.values()) * 1.2


def test_pacer_same_events_same_lambda_and_state_round_trip() -> None:
    a = BudgetPacer(budget_usd=5.0, period="day", step=0.02)
    b = BudgetPacer(budget_usd=5.0, period="day", step=0.02)
    times = 1_700_000_000.0 + np.arange(0, 500) * 60.0
    _drive(a, times[:250])
    state = json.loads(json.dumps(a.get_state()))
    _drive(b, times[:250])
    c = BudgetPacer(budget_usd=5.0, period="day", step=0.02).set_state(state)
    assert a.lam == b.lam == c.lam
    _drive(a, times[250:], seed=3)
    _drive(c, times[250:], seed=3)
    assert a.get_state() == c.get_state()


def test_period_bounds_are_calendar_aligned_utc() -> None:
    t = 1_709_251_199.0  # 2024-02-29 23:59:59 UTC
    assert period_bounds(t, "month") == (1_706_745_600.0, 1_709_251_200.0)
    assert period_bounds(t, "day") == (1_709_164_800.0, 1_709_251_200.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_per_request_usd": -1.0}, "budget_per_request_usd"),
        ({"budget_per_request_usd": float("nan")}, "budget_per_request_usd"),
        ({"budget_usd": float("inf"), "period": "day"}, "budget_usd"),
        ({"budget_usd": 1.0, "period": "week"}, "budget_period"),
        ({"budget_usd": 1.0}, "budget_period"),
        ({"budget_per_request_usd": 1.0, "hard_cap": True}, "hard_cap"),
        ({}, "budget"),
    ],
    ids=["negative", "nan", "inf", "unknown-period", "no-period", "cap-alone", "nothing"],
)
def test_pacer_rejects_bad_budgets(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BudgetPacer(**kwargs)


def test_pacer_hard_cap_counts_unapplied_spend_of_its_period_only() -> None:
    start = 1_700_000_000.0 - 1_700_000_000.0 % 3600
    pacer = BudgetPacer(budget_usd=0.05, period="hour", hard_cap=True)
    pacer.on_decision(start + 1.0, 0.02)
    scores, now = {"small": 0.5, "large": 0.9}, start + 2.0
    assert pacer.choose(scores, COST, "large", t=now).arm == "large"  # 0.03 left
    spent = [(start + 1.5, 0.015)]  # acknowledged, not applied yet: 0.015 left
    capped = pacer.choose(scores, COST, "large", t=now, unapplied=spent)
    assert (capped.arm, capped.reason) == ("small", "cap")
    assert capped.cost_weight == pacer.cost_weight(now)  # the weight ignores it
    last_hour = [(start - 10.0, 1.0)]
    assert pacer.choose(scores, COST, "large", t=now, unapplied=last_hour).arm == "large"
    # a new period opens with nothing spent, before any event of it is applied
    next_hour = start + 3600.0 + 1.0
    assert pacer.choose(scores, COST, "large", t=next_hour).arm == "large"
