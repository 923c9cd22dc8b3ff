"""One conformance suite run over every policy configuration the registry offers."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banditroute.learners import Policy, dumps, loads, make_policy

ARMS = ["a", "b", "c", "d"]
DIM = 4

CASES: dict[str, dict[str, Any]] = {
    "linucb": {"algorithm": "linucb"},
    "linucb_no_scaling": {"algorithm": "linucb", "scaling": "none", "alpha": 0.5},
    "thompson": {"algorithm": "thompson"},
    "epsilon_greedy_linear": {"algorithm": "epsilon_greedy"},
    "epsilon_greedy_mean": {"algorithm": "epsilon_greedy", "estimator": "mean"},
    "river_linear_softmax": {"algorithm": "river"},
    "river_linear_epsilon": {"algorithm": "river", "exploration": "epsilon"},
    "river_hoeffding_tree": {
        "algorithm": "river",
        "regressor": "hoeffding_tree",
        "grace_period": 20,
    },
    "uniform": {"algorithm": "uniform"},
    "fixed": {"algorithm": "fixed", "model": "b"},
}
# Policies whose choice depends on the policy's random generator.
RANDOMISED = [c for c in CASES if c not in {"fixed"}]

cases = pytest.mark.parametrize("case", list(CASES))


def make(case: str, seed: int = 0, arms: list[str] | None = None) -> Policy:
    params = dict(CASES[case])
    algorithm = params.pop("algorithm")
    return make_policy(algorithm, ARMS if arms is None else arms, DIM, seed=seed, **params)


def reward_of(x: np.ndarray, arm: str) -> float:
    """A context-dependent reward so that the best arm changes with x."""
    k = ARMS.index(arm) if arm in ARMS else 2
    return float(math.tanh(x[k % DIM] - 0.2 * k))


def play(
    policy: Policy,
    rounds: int,
    seed: int,
    *,
    rng: np.random.Generator | None = None,
    log: list[tuple[str, Any]] | None = None,
) -> list[str]:
    """Run select/update rounds; returns the chosen arms; optionally logs the learning events."""
    env = np.random.default_rng(seed)
    chosen = []
    for _ in range(rounds):
        x = env.normal(size=DIM) * 2.0 + 1.0
        d = policy.select(x, rng=rng)
        r = reward_of(x, d.arm)
        policy.update(x, d.arm, r)
        chosen.append(d.arm)
        if log is not None:
            log.append(("update", (x, d.arm, r)))
    return chosen


@cache
def trained(case: str) -> bytes:
    policy = make(case, seed=11)
    play(policy, 120, seed=5)
    return dumps(policy)


def check_decision(policy: Policy, x: np.ndarray, candidates: list[str] | None) -> None:
    d = policy.select(x, candidates)
    expected = set(policy.arms if candidates is None else candidates)
    assert d.arm in expected
    assert set(d.probabilities) == expected
    assert set(d.scores) == expected
    assert sorted(d.ranking) == sorted(expected)
    assert d.ranking[0] == d.arm
    assert math.isclose(sum(d.probabilities.values()), 1.0, rel_tol=0, abs_tol=1e-9)
    assert all(p >= 0.0 for p in d.probabilities.values())
    assert d.propensity == d.probabilities[d.arm] > 0.0
    assert all(math.isfinite(s) for s in d.scores.values())


@cases
def test_policy_same_seed_gives_same_decisions_and_state(case: str) -> None:
    p1, p2 = make(case, seed=3), make(case, seed=3)
    assert play(p1, 150, seed=1) == play(p2, 150, seed=1)
    assert dumps(p1) == dumps(p2)


@pytest.mark.parametrize("case", [c for c in RANDOMISED if c != "linucb_no_scaling"])
def test_policy_different_seeds_explore_differently(case: str) -> None:
    # Same contexts, different seeds: the exploration draws differ, so the choices do too.
    runs = {tuple(play(make(case, seed=s), 150, seed=1)) for s in range(4)}
    assert len(runs) > 1


@cases
def test_policy_state_round_trip_is_bit_identical(case: str) -> None:
    policy = make(case, seed=7)
    play(policy, 100, seed=2)
    policy.add_arm("e")
    policy.remove_arm("a")
    play(policy, 50, seed=3)
    data = dumps(policy)
    restored = loads(data)
    assert type(restored) is type(policy)
    assert restored.arms == policy.arms
    assert restored.hyperparameters == policy.hyperparameters
    assert dumps(restored) == data
    assert restored.summary() == policy.summary()
    # Both continue identically, own generators included.
    assert play(restored, 60, seed=4) == play(policy, 60, seed=4)
    assert dumps(restored) == dumps(policy)


@cases
def test_policy_replaying_events_gives_identical_state(case: str) -> None:
    live = make(case, seed=9)
    log: list[tuple[str, Any]] = []
    play(live, 80, seed=6, rng=np.random.default_rng(123), log=log)
    live.add_arm("e")
    log.append(("add", "e"))
    play(live, 40, seed=7, rng=np.random.default_rng(5), log=log)
    x, arm, r = log[3][1]
    live.correct(x, arm, r, r + 0.5)
    log.append(("correct", (x, arm, r, r + 0.5)))
    live.remove_arm("b")
    log.append(("remove", "b"))

    fresh = make(case, seed=9)
    for kind, args in log:
        if kind == "update":
            fresh.update(*args)
        elif kind == "correct":
            fresh.correct(*args)
        elif kind == "add":
            fresh.add_arm(args)
        else:
            fresh.remove_arm(args)
    assert dumps(fresh) == dumps(live)


@cases
def test_select_with_external_rng_leaves_state_unchanged(case: str) -> None:
    policy = loads(trained(case))
    before = dumps(policy)
    rng = np.random.default_rng(0)
    for _ in range(20):
        policy.select(np.ones(DIM), rng=rng)
    assert dumps(policy) == before


@cases
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=st.lists(st.floats(-1e3, 1e3), min_size=DIM, max_size=DIM),
    subset=st.lists(st.sampled_from(ARMS), min_size=1, max_size=len(ARMS)),
    use_all=st.booleans(),
)
def test_decisions_are_consistent_probability_distributions(
    case: str, x: list[float], subset: list[str], use_all: bool
) -> None:
    policy = loads(trained(case))
    check_decision(policy, np.array(x), None if use_all else subset)


@cases
def test_candidate_subset_is_respected(case: str) -> None:
    policy = loads(trained(case))
    env = np.random.default_rng(0)
    for _ in range(100):
        d = policy.select(env.normal(size=DIM), ["c", "a"])
        assert d.arm in {"a", "c"}
        assert set(d.probabilities) == {"a", "c"}


@cases
def test_removed_arm_is_never_chosen(case: str) -> None:
    policy = loads(trained(case))
    policy.remove_arm("b")
    assert policy.arms == ["a", "c", "d"]
    assert policy.known_arms == ["a", "b", "c", "d"]
    chosen = play(policy, 200, seed=8)
    assert "b" not in chosen
    with pytest.raises(ValueError, match="'b' was removed"):
        policy.select(np.zeros(DIM), ["b", "c"])
    # A late reward for the removed arm is still accepted, and re-adding makes it selectable.
    policy.update(np.zeros(DIM), "b", 1.0)
    policy.add_arm("b")
    assert policy.select(np.zeros(DIM), ["b"]).arm == "b"


@pytest.mark.parametrize("case", [c for c in CASES if c != "fixed"])
def test_added_arm_gets_explored(case: str) -> None:
    policy = loads(trained(case))
    policy.add_arm("new")
    assert "new" in policy.arms
    chosen = play(policy, 500, seed=9)
    assert "new" in chosen


def test_fixed_policy_always_chooses_its_model_when_available() -> None:
    policy = loads(trained("fixed"))
    assert set(play(policy, 50, seed=1)) == {"b"}
    d = policy.select(np.zeros(DIM), ["a", "c"])
    assert d.probabilities == {"a": 0.5, "c": 0.5}


@cases
def test_update_and_correct_return_self_and_count(case: str) -> None:
    policy = make(case)
    x = np.arange(DIM, dtype=float)
    assert policy.update(x, "c", 0.25) is policy
    assert policy.correct(x, "c", 0.25, 0.75) is policy
    summary = policy.summary()
    assert summary["c"]["updates"] == 1
    assert summary["c"]["mean_reward"] == pytest.approx(0.75)
    assert summary["a"] == {"updates": 0, "mean_reward": None, "active": True}


@pytest.mark.parametrize("case", ["linucb_no_scaling", "thompson", "epsilon_greedy_linear"])
def test_linear_correct_equals_learning_the_new_reward(case: str) -> None:
    params: dict[str, Any] = {"scaling": "none"}
    a = make_policy(CASES[case]["algorithm"], ARMS, DIM, seed=1, **params)
    b = make_policy(CASES[case]["algorithm"], ARMS, DIM, seed=1, **params)
    env = np.random.default_rng(0)
    xs = env.normal(size=(30, DIM))
    for i, x in enumerate(xs):
        a.update(x, "a", 0.1 * i)
        b.update(x, "a", 0.1 * i if i != 7 else -0.4)
    a.correct(xs[7], "a", 0.7, -0.4)
    sa, sb = a._get_state(), b._get_state()
    assert np.array_equal(sa["ridge_A"], sb["ridge_A"])
    np.testing.assert_allclose(sa["ridge_b"], sb["ridge_b"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sa["ridge_theta"], sb["ridge_theta"], rtol=0, atol=1e-9)


def test_every_registered_algorithm_is_covered() -> None:
    from banditroute.learners import ALGORITHMS

    assert {c["algorithm"] for c in CASES.values()} == set(ALGORITHMS)
