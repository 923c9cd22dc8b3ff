"""The contextual policies learn: regret on a synthetic linear bandit."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.learners import make_policy

ROUNDS = 3000
DIM = 10
ARMS = 5


def cumulative_regret(algorithm: str, seed: int, **params: float | str) -> float:
    """Expected-reward regret of ``algorithm`` on a linear bandit drawn from ``seed``.

    Each arm k has reward ``x @ theta_k + noise``, contexts ``x ~ N(0, I)``.
    """
    env = np.random.default_rng(seed)
    theta = env.normal(size=(ARMS, DIM)) / np.sqrt(DIM)
    names = [f"m{k}" for k in range(ARMS)]
    policy = make_policy(algorithm, names, DIM, seed=seed, **params)
    regret = 0.0
    for _ in range(ROUNDS):
        x = env.normal(size=DIM)
        mean = theta @ x
        k = names.index(policy.select(x).arm)
        regret += float(mean.max() - mean[k])
        policy.update(x, names[k], float(mean[k] + 0.1 * env.normal()))
    return regret


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linucb_and_thompson_regret_well_below_uniform_and_epsilon_greedy(seed: int) -> None:
    # This world has no arm means, only context effects of about +-1 per unit context: the
    # prior on context coefficients is set to its scale (context_ridge = DIM). The defaults
    # (a stronger context prior for LinUCB) are chosen for routing, where each model's mean
    # reward dominates; they must still learn here, far better than uniform.
    contextual = ("linucb", "thompson")
    world_prior = {"context_ridge": float(DIM)}
    regret = {
        name: cumulative_regret(name, seed, **(world_prior if name in contextual else {}))
        for name in ("linucb", "thompson", "epsilon_greedy", "uniform")
    }
    # Measured ratios are about 0.03-0.1 of uniform and 0.3-0.93 of epsilon-greedy; the
    # bounds leave a margin.
    for learner in contextual:
        assert regret[learner] < 0.15 * regret["uniform"], regret
        assert regret[learner] < regret["epsilon_greedy"], regret
    assert regret["epsilon_greedy"] < 0.5 * regret["uniform"], regret
    # the shipped defaults (measured 0.08-0.22 of uniform)
    for learner in contextual:
        assert cumulative_regret(learner, seed) < 0.35 * regret["uniform"], learner


def test_river_policy_learns_far_better_than_uniform() -> None:
    assert cumulative_regret("river", 0) < 0.2 * cumulative_regret("uniform", 0)


def test_linucb_exploration_decays_to_its_floor_and_propensities_stay_exact() -> None:
    """The uniform exploration starts at ``explore`` and shrinks with the updates, down to
    ``explore_min``: a cold pool explores, a learnt one stops paying for it, and every
    candidate keeps a propensity > 0 for off-policy evaluation."""
    arms = [f"m{i}" for i in range(5)]
    policy = make_policy("linucb", arms, dim=2, seed=0, explore=0.02, explore_decay=100.0,
                         explore_min=0.002)
    x = np.array([1.0, 0.5])
    rng = np.random.default_rng(0)

    def floor() -> float:
        d = policy.select(x, rng=rng)
        assert d.probabilities[d.arm] == d.propensity
        assert sum(d.probabilities.values()) == pytest.approx(1.0)
        return min(d.probabilities.values())

    floors = [floor()]
    for n in (100, 1_000, 10_000):
        while sum(int(c) for c in policy._counts) < n:
            policy.update(x, arms[0], 1.0)
        floors.append(floor())
    assert floors[0] == pytest.approx(0.02 / 5)
    assert floors[1] == pytest.approx(0.02 / 5 * np.sqrt(0.5), rel=0.02)
    assert floors[0] > floors[1] > floors[2] > 0
    assert floors[3] == pytest.approx(0.002 / 5)  # the floor holds

    constant = make_policy("linucb", arms, dim=2, explore=0.01, explore_min=0.01)
    for _ in range(1_000):
        constant.update(x, arms[0], 1.0)
    assert min(constant.select(x, rng=rng).probabilities.values()) == pytest.approx(0.01 / 5)


@pytest.mark.parametrize("min_pulls", [0, 3])
def test_linucb_min_pulls_keeps_an_early_zero_from_locking_a_good_model_out(
    min_pulls: int,
) -> None:
    """"good" earns 1.0 on every call but its first, "fair" 0.6 always. Without
    ``min_pulls`` good's one zero puts its optimistic score under fair's mean, and good is
    never tried again; with ``min_pulls=3`` it gets its three tries and takes every later
    decision. Propensities stay exact either way."""
    policy = make_policy("linucb", ["good", "fair"], dim=1, seed=0, explore=0.0,
                         explore_min=0.0, min_pulls=min_pulls)
    rng = np.random.default_rng(0)
    x = np.array([0.0])
    chosen = []
    for _ in range(300):
        d = policy.select(x, rng=rng)
        assert d.probabilities[d.arm] == d.propensity > 0
        tries = chosen.count("good") if d.arm == "good" else -1
        policy.update(x, d.arm, 0.6 if d.arm == "fair" else 0.0 if tries == 0 else 1.0)
        chosen.append(d.arm)
    late = chosen[100:]
    if min_pulls:
        assert chosen.count("good") >= 3 and late.count("good") == len(late)
    else:
        assert chosen.count("good") == 1 and late.count("good") == 0
