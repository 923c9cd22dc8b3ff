"""Reward shaping rules and the online cost model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from banditroute.learners import CostModel, RewardWeights, compute_reward, merge_quality

unit = st.floats(0.0, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, None),
        ({"quality": 0.7}, 0.7),
        ({"success": True}, 1.0),
        ({"success": False}, 0.0),
        ({"quality": 0.7, "success": False}, 0.7),
        ({"quality": 0.9, "error": True}, 0.0),
        ({"error": True, "feedback": 1.0}, 0.5),
        ({"quality": 0.6, "feedback": 1.0}, 0.8),
        ({"feedback": 0.25}, 0.25),
        ({"quality": 0.6, "feedback": 1.0, "feedback_weight": 1.0}, 1.0),
        ({"quality": 0.6, "feedback": 1.0, "feedback_weight": 0.0}, 0.6),
    ],
)
def test_merge_quality_rule(kwargs: dict[str, object], expected: float | None) -> None:
    result = merge_quality(**kwargs)  # type: ignore[arg-type]
    assert result == (None if expected is None else pytest.approx(expected))


def test_compute_reward_subtracts_cost_and_latency() -> None:
    w = RewardWeights(cost_weight=100.0, latency_weight=0.2)
    assert compute_reward(w, quality=0.9) == pytest.approx(0.9)
    assert compute_reward(w, quality=0.9, cost_usd=0.001) == pytest.approx(0.8)
    assert compute_reward(w, quality=0.9, latency_ms=500.0) == pytest.approx(0.8)
    assert compute_reward(w, success=True, feedback=0.0) == pytest.approx(0.5)
    assert compute_reward(w) == 0.0


@given(
    quality=unit,
    cost=st.floats(0.0, 10.0),
    latency=st.floats(0.0, 1e6),
    cw=st.floats(0.0, 1e4),
    lw=st.floats(0.0, 10.0),
)
def test_compute_reward_clipped_and_monotone_in_cost(
    quality: float, cost: float, latency: float, cw: float, lw: float
) -> None:
    w = RewardWeights(cost_weight=cw, latency_weight=lw, reward_min=-2.0, reward_max=2.0)
    r = compute_reward(w, quality=quality, cost_usd=cost, latency_ms=latency)
    assert -2.0 <= r <= 2.0
    cheaper = compute_reward(w, quality=quality, cost_usd=cost / 2, latency_ms=latency)
    assert cheaper >= r


def test_cost_model_predicts_prior_then_learns_per_model() -> None:
    cm = CostModel(4, default_output_tokens=300, default_latency_ms=800)
    x_short = np.array([1.0, 0.0, 0.0, 0.0])
    x_long = np.array([1.0, 1.0, 0.0, 0.0])
    assert cm.predict_output_tokens("m", x_short) == 300
    assert cm.predict_latency_ms("m", x_short) == 800
    env = np.random.default_rng(0)
    for _ in range(1500):
        long = bool(env.random() < 0.5)
        x = x_long if long else x_short
        cm.learn("m", x, output_tokens=1000.0 if long else 100.0, latency_ms=2000.0)
        cm.learn("other", x, output_tokens=50.0)
    assert cm.predict_output_tokens("m", x_long) > 2 * cm.predict_output_tokens("m", x_short)
    assert 700 < cm.predict_output_tokens("m", x_long) < 1400
    assert 60 < cm.predict_output_tokens("m", x_short) < 150
    assert 1500 < cm.predict_latency_ms("m", x_short) < 2600
    assert cm.predict_output_tokens("other", x_long) < 80
    assert cm.predict_latency_ms("other", x_long) == 800  # no latency observed: prior
    assert cm.predict_output_tokens("unseen", x_long) == 300
    usd = cm.estimate_cost_usd("m", x_long, 2000, 1.0, 10.0)
    expected = (2000 * 1.0 + cm.predict_output_tokens("m", x_long) * 10.0) / 1e6
    assert usd == pytest.approx(expected)
    assert set(cm.models) == {"m", "other"}


def test_cost_model_batch_predictions_match_single_ones() -> None:
    cm = CostModel(3, default_output_tokens=64, default_latency_ms=500)
    env = np.random.default_rng(2)
    for i in range(300):
        x = env.normal(size=3)
        cm.learn(f"m{i % 3}", x, output_tokens=50 + 40 * (i % 3) + 10 * abs(x[0]))
        if i % 3 == 0:
            cm.learn("m0", x, latency_ms=900.0)
    models = ["m0", "m1", "m2", "unseen"]
    for x in env.normal(size=(10, 3)):
        many = cm.predict_output_tokens_many(models, x)
        assert list(many) == models
        for m in models:
            assert many[m] == pytest.approx(cm.predict_output_tokens(m, x), rel=1e-12)
        lat = cm.predict_latency_ms_many(models, x)
        assert lat["m1"] == lat["unseen"] == 500
        assert lat["m0"] == pytest.approx(cm.predict_latency_ms("m0", x), rel=1e-12)
