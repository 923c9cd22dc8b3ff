"""banditroute policies driven by River's own bandit tooling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from river import bandit

from banditroute.learners import AsRiverPolicy, make_policy


def logged_history(n: int, seed: int) -> Any:
    """Uniformly logged events where arm 1 pays when f0 > 0 and arm 0 otherwise."""
    env = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ctx = {"f0": float(env.normal()), "f1": float(env.normal())}
        arm = int(env.integers(3))
        best = 1 if ctx["f0"] > 0 else 0
        out.append(([0, 1, 2], ctx, arm, 1.0 if arm == best else 0.0))
    return out


def test_river_evaluate_offline_drives_linucb_better_than_river_random() -> None:
    history = logged_history(4000, seed=0)
    ours = AsRiverPolicy(make_policy("linucb", ["0", "1", "2"], 2, seed=0), ["f0", "f1"])
    assert isinstance(ours, bandit.base.ContextualPolicy)
    reward, n_used = bandit.evaluate_offline(ours, history)
    random_reward, random_used = bandit.evaluate_offline(bandit.RandomPolicy(seed=0), history)
    assert n_used > 500
    # Replay estimate of the mean reward: a learnt policy clearly beats random (~1/3).
    ours_mean = float(reward.get() or 0.0) / n_used
    assert ours_mean > float(random_reward.get() or 0.0) / random_used + 0.2
    summary = ours.policy.summary()
    assert sum(arm["updates"] for arm in summary.values()) == n_used


def test_adapter_clone_is_an_independent_copy() -> None:
    ours = AsRiverPolicy(make_policy("thompson", ["a", "b"], 1, seed=0), ["x"])
    twin = ours.clone()
    ours.update("a", {"x": 1.0}, 1.0)
    assert ours.policy.summary()["a"]["updates"] == 1
    assert twin.policy.summary()["a"]["updates"] == 0
    assert twin.pull(["a", "b"], context={"x": 1.0}) in {"a", "b"}


def test_adapter_checks_feature_names() -> None:
    with pytest.raises(ValueError, match="feature_names has 1 names but the policy has dim=2"):
        AsRiverPolicy(make_policy("linucb", ["a"], 2), ["x"])
    with pytest.raises(TypeError, match="policy must be a learners Policy"):
        AsRiverPolicy(bandit.RandomPolicy(), ["x"])  # type: ignore[arg-type]
