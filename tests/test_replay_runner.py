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
from banditroute.service.replay.hull import hull_gap_interval
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

    def select(self, x: np.ndarray, candidates: Any = None, *, rng: Any = None,
               group: str | None = None) -> Any:
        return self.inner.select(x, candidates, rng=rng, group=group)

    def update(self, x: np.ndarray, arm: str, reward: float, *, group: str | None = None) -> Any:
        self.updates.append((arm, reward))
        return self.inner.update(x, arm, reward, group=group)


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
    # The default prior on context coefficients is strong (routing is mostly per-model means)
    # and the uniform exploration decays, so a split that only the context explains is found
    # by exploration alone: it takes a couple of thousand rounds (a few hundred with a
    # constant 1 % floor, which costs every other route 1 % of its calls for ever).
    ds = _toy(4000)
    res = run_online(PolicySpec("linucb").build(ds.models, 2, 0), ds,
                     _featurize(ds.prompts), cost_weight=10.0, seed=0)
    last = slice(2000, None)
    # after learning: type A -> cheap, type B -> dear, so quality ~1 at a low cost
    assert res.quality[last].mean() > 0.9
    assert res.cost[last].mean() < 0.0075
    regret = res.cumulative_regret()
    assert regret[-1] - regret[1999] < regret[1999]  # regret grows more slowly later


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


# --- hull gaps and learning curves (issue #11) ------------------------------------------

#: Per-model (cost, quality), the same on every prompt: the single-model hull is the chord
#: cheap (1, 0.5) -> dear (3, 1.0); "bad" (2, 0.25) lies 0.5 below it and "pricey"
#: (4, 0.75) lies past the hull's end, where the hull is flat at 1.0.
_FLAT = {"cheap": (1.0, 0.5), "bad": (2.0, 0.25), "dear": (3.0, 1.0), "pricey": (4.0, 0.75)}


def _flat(n: int = 40) -> ReplayDataset:
    models = list(_FLAT)
    cost = np.tile([_FLAT[m][0] for m in models], (n, 1))
    quality = np.tile([_FLAT[m][1] for m in models], (n, 1))
    return ReplayDataset("flat", [f"p{i}" for i in range(n)], models, quality, cost)


def _hull_by_hand(cost: float) -> float:
    return 0.5 + 0.25 * (min(max(cost, 1.0), 3.0) - 1.0)


def _report(ds: ReplayDataset, policy: str, weight: float = 0.1,
            seeds: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    config = ReplayConfig([PolicySpec.parse(policy)], cost_weights=[weight, 0.0],
                          seeds=seeds, share_windows=4)
    return run_experiment(ds, config, lambda p: np.ones((len(p), 1)))


@pytest.mark.parametrize(("model", "gap"), [("cheap", 0.0), ("dear", 0.0), ("bad", -0.5),
                                             ("pricey", -0.25)])
def test_fixed_policy_hull_gaps_equal_the_hand_computed_distance_to_the_hull(
        model: str, gap: float) -> None:
    res = _report(_flat(), f"fixed:model={model}")["results"][0]
    assert res["late_hull_gap"] == pytest.approx(gap)
    assert res["hull_gap"] == pytest.approx(gap)
    assert res["late_hull_gap_std"] == pytest.approx(0.0)
    assert [s["late_hull_gap"] for s in res["per_seed"]] == pytest.approx([gap] * 3)
    # every prompt alike: resampling prompts and seeds cannot move the gap
    assert res["hull_gap_ci95"] == pytest.approx([gap, gap])
    assert res["late_hull_gap_ci95"] == pytest.approx([gap, gap])


def test_uniform_policy_late_hull_gap_uses_only_the_second_half_of_its_own_pass() -> None:
    ds = _flat(41)  # odd: the late half is stream positions 20..40
    res = _report(ds, "uniform")["results"][0]
    quality = np.array([q for _, q in _FLAT.values()])
    cost = np.array([c for c, _ in _FLAT.values()])
    expected = []
    for seed in (0, 1, 2):  # the runs are deterministic per seed: redo them to see choices
        run = run_online(PolicySpec("uniform").build(ds.models, 1, seed), ds,
                         np.ones((ds.n, 1)), 0.1, seed)
        late = run.choices[20:]
        expected.append(quality[late].mean() - _hull_by_hand(cost[late].mean()))
    assert [s["late_hull_gap"] for s in res["per_seed"]] == pytest.approx(expected)
    assert res["late_hull_gap"] == pytest.approx(np.mean(expected))
    assert res["late_hull_gap_std"] == pytest.approx(np.std(expected))
    assert res["late_hull_gap"] < 0  # a blind mixture that includes "bad" and "pricey"
    lo, hi = res["late_hull_gap_ci95"]
    assert lo < res["late_hull_gap"] < hi < 0  # below every mixture, beyond the noise


def test_late_hull_gap_uses_the_hull_of_the_late_prompts() -> None:
    # "mid" (cost 2) is right on the prompts streamed first and wrong on the late ones:
    # over the whole pass it sits on the cheap-dear chord (gap 0), late it is 0.5 below.
    n = 20
    order = run_online(PolicySpec.parse("fixed:model=a").build(["a"], 1, 0),
                       ReplayDataset("o", ["p"] * n, ["a"], np.ones((n, 1)), np.ones((n, 1))),
                       np.ones((n, 1)), 0.0, seed=0).order
    mid = np.zeros(n)
    mid[order[: n // 2]] = 1.0
    quality = np.column_stack([np.zeros(n), mid, np.ones(n)])
    cost = np.tile([1.0, 2.0, 3.0], (n, 1))
    ds = ReplayDataset("late", [f"p{i}" for i in range(n)], ["cheap", "mid", "dear"],
                       quality, cost)
    res = _report(ds, "fixed:model=mid", seeds=[0])
    assert res["late_hull_gap"] == pytest.approx(-0.5)
    assert res["hull_gap"] == pytest.approx(0.0)
    assert res["results"][0]["per_seed"][0]["late_hull_gap"] == pytest.approx(-0.5)


def test_share_curves_sum_to_one_per_window_and_follow_the_policy() -> None:
    res = _report(_flat(41), "uniform")["results"][0]
    curve = res["share_curve"]
    assert curve["rounds"] == [11, 21, 31, 41]
    assert set(curve["shares"]) == set(_FLAT)
    totals = np.sum([curve["shares"][m] for m in _FLAT], axis=0)
    assert totals == pytest.approx(np.ones(4))
    fixed = _report(_flat(), "fixed:model=dear")["results"][0]["share_curve"]["shares"]
    assert fixed["dear"] == [1.0] * 4 and fixed["cheap"] == [0.0] * 4


def test_regret_vs_best_fixed_is_zero_for_the_best_model_and_adds_up_otherwise() -> None:
    # at lambda 0.1 the rewards are cheap 0.4, bad 0.05, dear 0.7, pricey 0.35
    best = _report(_flat(), "fixed:model=dear")["results"][0]
    assert best["best_fixed_model"] == "dear"
    assert best["final_regret_vs_best_fixed"] == 0.0
    assert best["regret_vs_best_fixed_curve"]["mean"] == [0.0] * 40
    assert best["regret_vs_best_fixed_curve"]["rounds"][-1] == 40
    assert [s["final_regret_vs_best_fixed"] for s in best["per_seed"]] == [0.0] * 3
    cheap = _report(_flat(), "fixed:model=cheap")["results"][0]
    assert cheap["final_regret_vs_best_fixed"] == pytest.approx(40 * 0.3)
    assert cheap["regret_vs_best_fixed_curve"]["mean"][9] == pytest.approx(10 * 0.3)
    # the best fixed model follows the cost weight: at lambda 0.3 "cheap" (0.2) beats
    # "dear" (0.1), so always-cheap has no regret and always-dear has 0.1 per round
    assert _report(_flat(), "fixed:model=cheap", weight=0.3)["best_fixed_model"] == "cheap"
    dear = _report(_flat(), "fixed:model=dear", weight=0.3)["results"][0]
    assert dear["final_regret_vs_best_fixed"] == pytest.approx(40 * 0.1)


def test_a_router_that_beats_every_single_model_has_positive_gap_and_negative_regret() -> None:
    ds = _toy(600)  # type A -> cheap, type B -> dear is better than any single model
    config = ReplayConfig([PolicySpec("linucb")], cost_weights=[10.0], seeds=[0, 1])
    res = run_experiment(ds, config, _featurize)["results"][0]
    assert res["late_hull_gap"] > 0
    assert res["late_hull_gap"] > res["hull_gap"]  # it learned: the late half is better
    lo, hi = res["late_hull_gap_ci95"]
    assert 0 < lo < res["late_hull_gap"] < hi  # above every mixture, beyond the noise
    assert res["best_fixed_model"] == "dear"
    assert res["final_regret_vs_best_fixed"] < 0


def test_hull_gap_interval_rejects_bad_arguments() -> None:
    ds = _flat(4)
    with pytest.raises(ValueError, match="passes"):
        hull_gap_interval(ds, [])
    with pytest.raises(ValueError, match="level"):
        hull_gap_interval(ds, [(np.arange(4), np.zeros(4, dtype=int))], level=1.0)
    with pytest.raises(ValueError, match="choices"):
        hull_gap_interval(ds, [(np.arange(4), np.zeros(3, dtype=int))])
