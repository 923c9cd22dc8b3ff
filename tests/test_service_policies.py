"""The learning rule applied by every process (no database): update, then correct."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.learners.reward import RewardWeights
from banditroute.service.core.policies import (
    DecisionEvents,
    OutcomeFacts,
    PolicyRegistry,
    PolicySpec,
    reward_of,
)

SPEC = PolicySpec("linucb", {"alpha": 0.5}, "p", 1, RewardWeights(feedback_weight=0.5))
ARMS = ["a", "b", "c"]


def _event(model: str, seed: int) -> DecisionEvents:
    x = np.random.default_rng(seed).normal(size=8)
    return DecisionEvents(key=SPEC.key, model=model, features=x, shadows=())


def test_feedback_before_outcome_updates_then_corrects() -> None:
    reg = PolicyRegistry(8)
    live = reg.ensure(SPEC, ARMS)
    ev = _event("a", 0)
    assert reg.apply_feedback(ev, 1.0, event_id=1) == [(SPEC.key, 1.0)]
    assert reg.apply_outcome(ev, OutcomeFacts(quality=0.0), event_id=2) == [(SPEC.key, 0.5)]
    summary = live.policy.summary()["a"]
    assert summary["updates"] == 1 and summary["mean_reward"] == pytest.approx(0.5)


def test_unchanged_reward_is_not_relearned() -> None:
    reg = PolicyRegistry(8)
    reg.ensure(SPEC, ARMS)
    ev = _event("b", 1)
    reg.apply_outcome(ev, OutcomeFacts(quality=0.6), event_id=1)
    assert reg.apply_feedback(ev, 0.6, event_id=2) == []  # merged quality is still 0.6


def test_events_already_in_a_snapshot_are_skipped() -> None:
    reg = PolicyRegistry(8)
    live = reg.ensure(SPEC, ARMS, last_event_id=5)
    ev = _event("c", 2)
    assert reg.apply_outcome(ev, OutcomeFacts(quality=1.0), event_id=4) == []
    assert live.policy.summary()["c"]["updates"] == 0
    # ...but the decision remembers what the policy learned, so a later rating corrects it
    assert reg.apply_feedback(ev, 0.0, event_id=6) == [(SPEC.key, 0.5)]
    assert live.policy.summary()["c"]["updates"] == 0


def test_a_new_model_becomes_an_arm_at_its_first_event() -> None:
    reg = PolicyRegistry(8)
    live = reg.ensure(SPEC, ARMS[:2])
    for i in range(10):
        reg.apply_outcome(_event(ARMS[i % 2], i), OutcomeFacts(quality=0.5), event_id=i + 1)
    assert "c" not in live.policy.arms
    assert reg.apply_outcome(_event("c", 99), OutcomeFacts(quality=1.0), event_id=11)
    assert live.policy.summary()["c"]["updates"] == 1


def test_reward_rule() -> None:
    w = RewardWeights(cost_weight=10.0, latency_weight=0.1, feedback_weight=0.5)
    facts = OutcomeFacts(quality=0.8, cost_usd=0.01, latency_ms=1000.0)
    assert reward_of(w, facts, []) == pytest.approx(0.8 - 0.1 - 0.1)
    assert reward_of(w, facts, [0.0, 1.0]) == pytest.approx(0.65 - 0.2)
    assert reward_of(w, OutcomeFacts(error=True), []) == 0.0
    assert reward_of(w, None, [0.25]) == 0.25
