"""The in-process replay runner: bandit feedback only, deterministic per seed, baselines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from banditroute.learners.reward import RewardWeights, compute_reward
from banditroute.service.replay.baselines import baseline_report
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.runner import PolicySpec, reward_matrix, run_online, warm_start


def _toy(n: int = 300, seed: int = 0) -> ReplayDataset:
    """Two task types: 'cheap' solves type A, only 'dear' solves type B."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 2, size=n)
    prompts = [("easy sum " if k == 0 else "prove the theorem ") + str(i)
               for i, k in enumerate(kinds)]
    quality = np.where(kinds[:, None] == 0, [1.0, 1.0], [0.0, 1.0])
    cost = np.tile([0.001, 0.01], (n, 1))
    return ReplayDataset("toy", prompts, ["cheap", "dear"], quality, cost,
                         tasks=["A" if k == 0 else "B" for k in kinds])


def _featurize(prompts: Sequence[str]) -> np.ndarray:
    return np.array([[1.0 if p.startswith("easy") else 0.0, 1.0] for p in prompts])


class _Spy:
    """Wraps a policy and records every update it receives."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.updates: list[tuple[str, float]] = []

    def select(self, x: np.ndarray, candidates: Any = None, *, rng: Any = None) -> Any:
        return self.inner.select(x, candidates, rng=rng)

    def update(self, x: np.ndarray, arm: str, reward: float) -> Any:
        self.updates.append((arm, reward))
        return self.inner.update(x, arm, reward)


def test_reward_matrix_equals_the_learners_reward() -> None:
    ds = _toy(10)
    r = reward_matrix(ds, 20.0)
    w = RewardWeights(cost_weight=20.0)
    for i in range(ds.n):
        for j in range(ds.k):
            assert r[i, j] == pytest.approx(compute_reward(
                w, quality=float(ds.quality[i, j]), cost_usd=float(ds.cost[i, j])))


def test_policy_only_sees_the_chosen_models_reward() -> None:
    ds = _toy(50)
    spy = _Spy(PolicySpec("linucb").build(ds.models, 2, seed=0))
    res = run_online(spy, ds, _featurize(ds.prompts), cost_weight=10.0, seed=0)
    assert len(spy.updates) == ds.n
    rewards = reward_matrix(ds, 10.0)
    for t, (arm, reward) in enumerate(spy.updates):
        assert arm == ds.models[res.choices[t]]
        assert reward == rewards[res.order[t], res.choices[t]]


def test_replay_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    ds = _toy()
    x = _featurize(ds.prompts)

    def run(seed: int) -> Any:
        return run_online(PolicySpec("thompson").build(ds.models, 2, seed), ds, x, 10.0, seed)

    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a.order, b.order) and np.array_equal(a.choices, b.choices)
    assert np.array_equal(a.propensities, b.propensities)
    assert not np.array_equal(a.order, c.order)


def test_linucb_learns_the_task_split_and_beats_random() -> None:
    ds = _toy(600)
    res = run_online(PolicySpec("linucb").build(ds.models, 2, 0), ds,
                     _featurize(ds.prompts), cost_weight=10.0, seed=0)
    last = slice(300, None)
    # after learning: type A -> cheap, type B -> dear, so quality ~1 at a low cost
    assert res.quality[last].mean() > 0.9
    assert res.cost[last].mean() < 0.0075
    regret = res.cumulative_regret()
    assert regret[-1] - regret[299] < regret[299]  # regret grows more slowly later


def test_warm_start_full_information_feeds_every_model() -> None:
    ds = _toy(20)
    spy = _Spy(PolicySpec("linucb").build(ds.models, 2, 0))
    warm_start(spy, ds, _featurize(ds.prompts), 10.0, seed=0, mode="full")
    assert len(spy.updates) == ds.n * ds.k
    spy2 = _Spy(PolicySpec("linucb").build(ds.models, 2, 0))
    warm_start(spy2, ds, _featurize(ds.prompts), 10.0, seed=0, mode="replay")
    assert len(spy2.updates) == ds.n
    with pytest.raises(ValueError, match="mode"):
        warm_start(spy, ds, _featurize(ds.prompts), 10.0, seed=0, mode="bogus")


def test_baselines_single_models_random_and_oracle() -> None:
    ds = _toy(100)
    b = baseline_report(ds, cost_weight=10.0)
    share_a = np.mean([t == "A" for t in ds.tasks or []])
    assert b["best_single_model"] == "dear"
    assert b["best_single_accuracy"] == 1.0
    assert b["oracle_accuracy"] == 1.0
    assert b["oracle_cost_per_query"] == pytest.approx(share_a * 0.001 + (1 - share_a) * 0.01)
    assert b["random"]["accuracy"] == pytest.approx((share_a + 1) / 2)
    assert b["strong_model"] == "dear" and b["weak_model"] == "cheap"
    assert [p["model"] for p in b["cost_threshold_sweep"]] == ["cheap", "dear"]


def test_experiment_report_has_cold_and_warm_results_and_two_model_metrics() -> None:
    ds = _toy(200, seed=1)
    history = _toy(200, seed=2)
    config = ReplayConfig([PolicySpec.parse("linucb:alpha=0.2"), PolicySpec("epsilon_greedy")],
                          cost_weights=[10.0, 0.0, 200.0], seeds=[0, 1], warm_start=True)
    report = run_experiment(ds, config, _featurize, history)
    assert [(r["policy"], r["start"]) for r in report["results"]] == [
        ("linucb", "cold"), ("linucb", "warm"), ("epsilon_greedy", "cold"),
        ("epsilon_greedy", "warm")]
    for key in ("policy", "split", "seeds", "accuracy", "cost_per_query", "best_single_model",
                "best_single_accuracy", "best_single_cost_per_query", "oracle_accuracy",
                "oracle_cost_per_query", "aiq", "apgr", "cpt50"):
        assert key in report, key
    assert report["start"] == "warm"
    warm = report["results"][1]
    cold = report["results"][0]
    assert warm["final_regret"] < cold["final_regret"]
    assert len(warm["sweep"]) == 3 and warm["cost_weight"] == 10.0
    assert warm["cpt50"] < 0.5  # better than the random router
    assert set(warm["by_task"]) == {"A", "B"}
    assert warm["regret_curve"]["rounds"][-1] == ds.n


def test_experiment_is_reproducible() -> None:
    ds = _toy(120)
    config = ReplayConfig([PolicySpec("thompson")], cost_weights=[10.0, 50.0], seeds=[0, 1])
    assert run_experiment(ds, config, _featurize) == run_experiment(ds, config, _featurize)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="cost_weights"):
        ReplayConfig([PolicySpec("linucb")], cost_weights=[-1.0])
    with pytest.raises(ValueError, match="policies"):
        ReplayConfig([], cost_weights=[1.0])
    with pytest.raises(ValueError, match="history"):
        run_experiment(_toy(10), ReplayConfig([PolicySpec("linucb")], [1.0], warm_start=True),
                       _featurize)


def test_policy_spec_parse_rejects_malformed_text() -> None:
    with pytest.raises(ValueError, match="key=value"):
        PolicySpec.parse("linucb:alpha")
    with pytest.raises(ValueError, match="algorithm"):
        PolicySpec.parse(":alpha=1")
    assert PolicySpec.parse("river:model=hoeffding,softmax=true").hyperparameters == {
        "model": "hoeffding", "softmax": True}
