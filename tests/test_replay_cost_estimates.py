"""Per-prompt cost estimates in budget-paced replay (issue #12).

A model's cost per call varies with the prompt. The pacer prices each call, so it must see the
per-prompt estimate: then it spends the budget where the dear model is cheap.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from banditroute.learners.pacing import BudgetPacer
from banditroute.learners.registry import make_policy
from banditroute.service.replay.cost_estimates import CostEstimates
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.runner import estimated_costs, run_budgeted


def _two_kinds(n: int, seed: int) -> tuple[ReplayDataset, np.ndarray]:
    """'dear' is always right and 'cheap' half the time; 'dear' costs 40x more on kind A
    prompts (feature +1) than on kind B (feature -1)."""
    rng = np.random.default_rng(seed)
    kind_a = rng.integers(0, 2, size=n).astype(bool)
    quality = np.c_[rng.integers(0, 2, size=n).astype(float), np.ones(n)]
    cost = np.c_[np.full(n, 0.0001), np.where(kind_a, 0.008, 0.0002)]
    features = np.where(kind_a, 1.0, -1.0)[:, None]
    prompts = [f"p{i}" for i in range(n)]
    return ReplayDataset("kinds", prompts, ["cheap", "dear"], quality, cost), features


def test_estimates_learn_each_models_cost_per_prompt_from_history() -> None:
    history, features = _two_kinds(400, seed=0)
    est = CostEstimates(estimated_costs(history, history), dim=1)
    before = est.predict(np.array([1.0]))
    assert before["dear"] == pytest.approx(history.mean_cost()[1])  # the flat price
    est.fit(features, history.cost, history.models)
    on_a, on_b = est.predict(np.array([1.0])), est.predict(np.array([-1.0]))
    assert on_a["dear"] == pytest.approx(0.008, rel=0.02)
    assert on_b["dear"] == pytest.approx(0.0002, abs=1e-4)
    assert on_a["cheap"] == pytest.approx(0.0001, rel=0.02)


def test_estimates_follow_realised_costs_online_and_never_price_a_model_at_zero() -> None:
    est = CostEstimates({"m": 0.01}, dim=1)
    for _ in range(300):
        est.update("m", np.array([1.0]), 0.0)
    assert est.predict(np.array([1.0]))["m"] == pytest.approx(0.0005)  # 5 % of the prior
    with pytest.raises(ValueError, match="ridge"):
        CostEstimates({"m": 0.01}, dim=1, ridge=0.0)


def test_paced_replay_with_per_prompt_costs_buys_more_accuracy_for_the_same_budget() -> None:
    history, hist_features = _two_kinds(400, seed=1)
    data, features = _two_kinds(1200, seed=2)
    budget = 0.002  # between always-cheap (0.0001) and always-dear (~0.0041)
    runs = {}
    for name in ("mean", "prompt"):
        costs: dict[str, float] | CostEstimates = estimated_costs(history, data)
        if name == "prompt":
            costs = CostEstimates(estimated_costs(history, data), dim=1)
            costs.fit(hist_features, history.cost, history.models)
        policy = make_policy("linucb", data.models, dim=1, seed=0)
        runs[name] = run_budgeted(policy, data, features,
                                  BudgetPacer(budget_per_request_usd=budget, step=0.05),
                                  costs, seed=0)
    for run in runs.values():
        assert run.cost_per_query == pytest.approx(budget, rel=0.1)
    # Priced per prompt, every kind-B call (cheap for 'dear') goes to 'dear' and the rest of
    # the money to kind A; priced at the mean, both kinds get the same share.
    assert runs["prompt"].accuracy >= runs["mean"].accuracy + 0.05


class _GroupSpy:
    """A policy that records the group of every ``select`` and delegates to LinUCB."""

    def __init__(self, models: list[str]) -> None:
        self.inner = make_policy("linucb", models, dim=1, seed=0)
        self.groups: list[str | None] = []

    def select(self, x: np.ndarray, **kwargs: object) -> object:
        self.groups.append(kwargs.get("group"))  # type: ignore[arg-type]
        return self.inner.select(x, **kwargs)

    def update(self, *args: object, **kwargs: object) -> None:
        self.inner.update(*args, **kwargs)


@pytest.mark.parametrize("task_context", [True, False])
def test_warm_pacing_pass_sees_each_history_prompts_task_as_the_run_does(
        task_context: bool) -> None:
    history, hist_features = _two_kinds(30, seed=2)
    history = replace(history, tasks=["billing" if i % 2 else "code" for i in range(history.n)])
    data, features = _two_kinds(20, seed=3)
    data = replace(data, tasks=["code"] * data.n)
    spy = _GroupSpy(data.models)
    run_budgeted(spy, data, features, BudgetPacer(budget_per_request_usd=0.002, step=0.05),
                 estimated_costs(history, data), seed=0, history=history,
                 history_features=hist_features, task_context=task_context)
    warm, live = spy.groups[:history.n], spy.groups[history.n:]
    assert len(live) == data.n
    if task_context:
        assert set(warm) == {'{"task":"billing"}', '{"task":"code"}'}
        assert set(live) == {'{"task":"code"}'}
    else:
        assert set(warm) == set(live) == {None}
