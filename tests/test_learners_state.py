"""Snapshots of River-backed models and of the cost model are exact."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.learners import CostModel, RiverRewardPolicy, dumps, loads


@pytest.mark.parametrize("regressor", ["linear", "hoeffding_tree"])
def test_river_policy_restores_same_predictions_and_same_bytes(regressor: str) -> None:
    policy = RiverRewardPolicy(["a", "b", "c"], dim=5, seed=1, regressor=regressor, grace_period=30)
    env = np.random.default_rng(0)
    for _ in range(600):
        x = env.normal(size=5)
        d = policy.select(x)
        # Non-linear reward: the tree has something to split on.
        policy.update(x, d.arm, float((x[0] > 0) == (d.arm == "a")) + 0.1 * x[1])
    data = dumps(policy)
    restored = loads(data)
    assert isinstance(restored, RiverRewardPolicy)
    assert dumps(restored) == data
    probe = env.normal(size=(50, 5))
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    for x in probe:
        assert restored.select(x, rng=rng1) == policy.select(x, rng=rng2)
    # Learning continues identically after the restore.
    for x in probe:
        policy.update(x, "b", float(x[2]))
        restored.update(x, "b", float(x[2]))
    assert dumps(restored) == dumps(policy)


def test_hoeffding_tree_policy_actually_splits() -> None:
    policy = RiverRewardPolicy(["a"], dim=2, regressor="hoeffding_tree", grace_period=20)
    env = np.random.default_rng(0)
    for _ in range(400):
        x = env.normal(size=2)
        policy.update(x, "a", 1.0 if x[0] > 0 else -1.0)
    model = policy._models[0]
    assert model.n_nodes > 1
    restored = loads(dumps(policy))
    assert isinstance(restored, RiverRewardPolicy)
    assert restored._models[0].n_nodes == model.n_nodes


def test_cost_model_round_trip_is_exact() -> None:
    cm = CostModel(3, default_output_tokens=200)
    env = np.random.default_rng(1)
    for _ in range(200):
        x = env.normal(size=3)
        cm.learn("small", x, output_tokens=100 + 50 * abs(x[0]), latency_ms=300.0)
        cm.learn("large", x, output_tokens=800.0)
    data = cm.dumps()
    restored = CostModel.loads(data)
    assert restored.dumps() == data
    assert CostModel.from_dict(cm.to_dict()).to_dict() == cm.to_dict()
    for x in env.normal(size=(20, 3)):
        for model in ("small", "large", "unseen"):
            assert restored.predict_output_tokens(model, x) == cm.predict_output_tokens(model, x)
            assert restored.predict_latency_ms(model, x) == cm.predict_latency_ms(model, x)
    assert restored.summary() == {
        "small": {"output_tokens": 200, "latency_ms": 200},
        "large": {"output_tokens": 200},
    }
