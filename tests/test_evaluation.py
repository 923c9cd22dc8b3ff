"""Off-policy estimators: unbiased on synthetic logs with known propensities, valid CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from banditroute.learners.evaluation import (
    doubly_robust,
    effective_sample_size,
    ips,
    replay_estimate,
    snips,
)
from banditroute.learners.policy_evaluation import LoggedEvent, RidgeRewardModel, evaluate_policy
from banditroute.learners.registry import make_policy

K = 3
ARM_MEANS = np.array([[0.2, 0.5, 0.8], [0.9, 0.4, 0.1]])  # by context type (0 or 1)


def _logged(seed: int, n: int = 2000) -> dict[str, np.ndarray]:
    """A logging policy with context-dependent, known, non-uniform propensities."""
    rng = np.random.default_rng(seed)
    ctx = rng.integers(0, 2, size=n)
    logging = np.where(ctx[:, None] == 0, [0.6, 0.3, 0.1], [0.2, 0.2, 0.6])
    arms = np.array([rng.choice(K, p=p) for p in logging])
    rewards = rng.binomial(1, ARM_MEANS[ctx, arms]).astype(np.float64)
    # target: deterministic best arm per context type
    target = np.zeros((n, K))
    target[np.arange(n), np.where(ctx == 0, 2, 0)] = 1.0
    return {"ctx": ctx, "arms": arms, "rewards": rewards,
            "props": logging[np.arange(n), arms], "target": target}


TRUE_VALUE = 0.5 * 0.8 + 0.5 * 0.9  # the target's expected reward


def _coverage(estimator: str) -> tuple[int, list[float]]:
    hits, values = 0, []
    for seed in range(50):
        d = _logged(seed)
        pi_logged = d["target"][np.arange(d["arms"].size), d["arms"]]
        if estimator == "ips":
            est = ips(d["rewards"], d["props"], pi_logged)
        elif estimator == "snips":
            est = snips(d["rewards"], d["props"], pi_logged)
        elif estimator == "dr":
            # a deliberately wrong reward model: DR must still be unbiased
            qhat = np.full((d["arms"].size, K), 0.5)
            est = doubly_robust(d["rewards"], d["props"], d["arms"], d["target"], qhat)
        else:
            target_arms = np.where(d["ctx"] == 0, 2, 0)
            est = replay_estimate(d["rewards"], d["arms"].tolist(), target_arms.tolist(),
                                  d["props"], weighted=True)
        hits += est.ci_low <= TRUE_VALUE <= est.ci_high
        values.append(est.value)
    return hits, values


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr", "replay"])
def test_estimator_is_unbiased_and_its_ci_covers_the_true_value(estimator: str) -> None:
    hits, values = _coverage(estimator)
    # a 95% interval should cover in ~47.5 of 50 runs; P(< 42) is tiny for a valid CI
    assert hits >= 42, f"{estimator}: true value covered in only {hits}/50 runs"
    # unbiased: the mean over 50 runs is within ~4 standard errors of the truth
    se = np.std(values) / math.sqrt(len(values))
    assert abs(np.mean(values) - TRUE_VALUE) < 4 * se + 1e-3


def test_bootstrap_interval_is_seeded_and_contains_the_estimate() -> None:
    d = _logged(3, n=500)
    pi_logged = d["target"][np.arange(d["arms"].size), d["arms"]]
    a = snips(d["rewards"], d["props"], pi_logged, bootstrap=200, seed=7)
    b = snips(d["rewards"], d["props"], pi_logged, bootstrap=200, seed=7)
    assert a == b
    assert a.ci_low < a.value < a.ci_high


def test_supported_events_and_effective_sample_size_are_reported() -> None:
    est = ips([1.0, 0.0, 1.0, 0.0], [0.5, 0.5, 0.25, 1.0], [1.0, 0.0, 1.0, 0.0])
    assert est.supported == 2
    assert est.n == 4
    # weights 2, 0, 4, 0: ESS = 36 / 20
    assert est.ess == pytest.approx(1.8)
    assert effective_sample_size([2, 0, 4, 0]) == pytest.approx(1.8)


def test_replay_counts_only_matching_events() -> None:
    est = replay_estimate([1.0, 0.0, 0.0], ["a", "b", "c"], ["a", "b", "a"])
    assert est.supported == 2
    assert est.value == pytest.approx(0.5)


def test_replay_without_matches_has_no_estimate() -> None:
    est = replay_estimate([1.0], ["a"], ["b"])
    assert est.supported == 0
    assert math.isnan(est.value)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ips([1.0], [0.0], [1.0]), "propensities"),
        (lambda: ips([1.0], [1.5], [1.0]), "propensities"),
        (lambda: ips([float("nan")], [0.5], [1.0]), "rewards"),
        (lambda: ips([1.0, 1.0], [0.5], [1.0]), "propensities"),
        (lambda: snips([1.0], [0.5], [2.0]), "target_probabilities"),
        (lambda: ips([1.0], [0.5], [1.0], confidence=1.0), "confidence"),
        (lambda: doubly_robust([1.0], [0.5], [3], np.ones((1, 2)), np.ones((1, 2))),
         "logged_arms"),
        (lambda: replay_estimate([1.0], ["a"], ["a"], weighted=True), "propensities"),
    ],
    ids=["zero-propensity", "propensity>1", "nan-reward", "length", "target>1", "confidence",
         "arm-index", "weighted-needs-propensities"],
)
def test_estimators_reject_bad_input(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


def _policy_log(seed: int, n: int = 1500) -> tuple[list[LoggedEvent], float]:
    """Uniform logging over 2 arms; arm 'b' is better when x[0] > 0.

    Also returns the expected reward of always choosing 'a' on these contexts.
    """
    rng = np.random.default_rng(seed)
    events = []
    value_of_a = 0.0
    for _ in range(n):
        x = rng.normal(size=2)
        arm = "a" if rng.random() < 0.5 else "b"
        mean = 0.5 + (0.3 if (arm == "b") == (x[0] > 0) else -0.3)
        value_of_a += 0.8 if x[0] <= 0 else 0.2
        events.append(LoggedEvent(x, arm, float(rng.normal(mean, 0.1)), 0.5, ("a", "b")))
    return events, value_of_a / n


def test_evaluate_policy_recovers_a_fixed_policy_value() -> None:
    hits = dict.fromkeys(("ips", "snips", "dr", "replay"), 0)
    for seed in range(10):
        events, truth = _policy_log(seed, n=800)
        policy = make_policy("fixed", ["a", "b"], dim=2, model="a")
        est = evaluate_policy(policy, events, learn=False, seed=seed)
        # always 'a': expected reward 0.8 when x[0] <= 0, 0.2 otherwise
        for name in hits:
            hits[name] += est[name].ci_low <= truth <= est[name].ci_high
            assert 300 < est[name].supported < 500  # about half the events logged 'a'
    assert all(h >= 7 for h in hits.values()), hits


def test_evaluate_policy_ranks_a_learning_policy_above_uniform() -> None:
    events, _ = _policy_log(2)
    learner = make_policy("linucb", ["a", "b"], dim=2, seed=0, alpha=0.1, explore=0.05)
    uniform = make_policy("uniform", ["a", "b"], dim=2, seed=0)
    good = evaluate_policy(learner, events, seed=0)
    flat = evaluate_policy(uniform, events, seed=0)
    assert good["snips"].value > flat["snips"].ci_high
    assert flat["ips"].ci_low <= 0.5 <= flat["ips"].ci_high


def test_ridge_reward_model_learns_per_arm_means() -> None:
    model = RidgeRewardModel(["a", "b"], dim=1, alpha=0.01)
    for _ in range(200):
        model.update(np.array([1.0]), "a", 1.0).update(np.array([1.0]), "b", 0.0)
    pred = model.predict(np.array([1.0]))
    assert pred["a"] == pytest.approx(1.0, abs=1e-3)
    assert pred["b"] == pytest.approx(0.0, abs=1e-3)
