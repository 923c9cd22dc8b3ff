"""The experiment statistics' reward SQL equals the Python reward rule on random cases.

Experiment statistics aggregate rewards in SQL (:mod:`banditroute.service.experiments.scoring`,
through the status query ``stats._scored``); the follower learns from
``banditroute.learners.reward`` (through ``policies.reward_of``). One rule, two
implementations: this test runs the SQL on the test database over random outcomes, ratings and
weights and compares each decision's reward with the Python one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from banditroute.learners.reward import RewardWeights
from banditroute.service.core.policies import OutcomeFacts, reward_of
from banditroute.service.experiments.stats import _scored
from banditroute.service.storage.database import create_engine

_INSERT_DECISION = text(
    "INSERT INTO decisions (decision_id, created_at, event_id, tenant, route, unit_id, "
    "policy_name, policy_version, experiment, variant, bucket, model, propensity, candidates, "
    "scores, probabilities, estimated_cost_usd, features, prompt_hash) VALUES (:d, :t, :e, '', "
    "'default', '', 'p', 1, 'reward-sql', 'v', 0, 'a', 1.0, ARRAY['a'], ARRAY[0.0], "
    "ARRAY[1.0], 0.0, ''::bytea, ''::bytea)"
)
_INSERT_OUTCOME = text(
    "INSERT INTO outcomes (event_id, decision_id, decision_created_at, tenant, quality, success, "
    "error, cost_usd, latency_ms, reward) VALUES (:e, :d, :t, '', :quality, :success, :error, "
    ":cost_usd, :latency_ms, 0.0)"
)
_INSERT_FEEDBACK = text(
    "INSERT INTO feedback (event_id, decision_id, decision_created_at, tenant, feedback_key, "
    "rating) VALUES (:e, :d, :t, '', :key, :rating)"
)


@dataclass(frozen=True)
class _Case:
    outcome: OutcomeFacts | None
    cost_usd: float | None  # as stored (NULL allowed); the follower reads NULL as 0
    ratings: tuple[float, ...]


def _nonneg(high: float) -> st.SearchStrategy[float]:
    # 0 or at least 1e-9: PostgreSQL raises on a float8 product that underflows (two tiny
    # factors) where Python rounds to 0; no weight, score or price is that small.
    return st.just(0.0) | st.floats(1e-9, high)


_unit = _nonneg(1.0)
_outcomes = st.builds(
    OutcomeFacts,
    quality=st.none() | _unit,
    success=st.none() | st.booleans(),
    error=st.booleans(),
    latency_ms=st.none() | _nonneg(60_000.0),
)
_cases = st.builds(
    _Case,
    outcome=st.none() | _outcomes,
    cost_usd=st.none() | _nonneg(0.5),
    ratings=st.lists(_unit, max_size=3).map(tuple),
)
_weights = st.builds(
    RewardWeights,
    cost_weight=_nonneg(500.0),
    latency_weight=_nonneg(2.0),
    feedback_weight=_unit,
)


@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


def _python_reward(case: _Case, weights: RewardWeights) -> float | None:
    outcome = case.outcome
    if outcome is not None:  # the outcome as the follower reads it from the log
        cost = 0.0 if case.cost_usd is None else case.cost_usd
        outcome = OutcomeFacts(
            outcome.quality, outcome.success, outcome.error, cost, outcome.latency_ms
        )
    return reward_of(weights, outcome, list(case.ratings))


def _sql_rewards(engine: Engine, cases: list[_Case], weights: RewardWeights) -> list[float | None]:
    now = datetime.now(UTC)
    # Far above the ids the event sequence hands out: other tests of the session database
    # (test_experiments_live) commit rows with ids from the sequence, and these rows (rolled back
    # below) must not collide with them.
    event = 1 << 50
    with engine.connect() as conn, conn.begin() as tx:
        for case in cases:
            did = uuid.uuid4()
            event += 10
            conn.execute(_INSERT_DECISION, {"d": did, "t": now, "e": event})
            o = case.outcome
            if o is not None:
                conn.execute(
                    _INSERT_OUTCOME,
                    {
                        "e": event + 1,
                        "d": did,
                        "t": now,
                        "quality": o.quality,
                        "success": o.success,
                        "error": "boom" if o.error else "",
                        "cost_usd": case.cost_usd,
                        "latency_ms": o.latency_ms,
                    },
                )
            for k, rating in enumerate(case.ratings):
                conn.execute(
                    _INSERT_FEEDBACK,
                    {"e": event + 2 + k, "d": did, "t": now, "key": f"k{k}", "rating": rating},
                )
        scored = _scored("reward-sql", weights).c
        rows = conn.execute(select(scored.reward).order_by(scored.event_id)).all()
        tx.rollback()
    return [None if r.reward is None else float(r.reward) for r in rows]


@settings(max_examples=60, deadline=None)
@given(cases=st.lists(_cases, min_size=1, max_size=6), weights=_weights)
def test_experiments_reward_sql_equals_learners_reward(
    engine: Engine, cases: list[_Case], weights: RewardWeights
) -> None:
    expected = [_python_reward(c, weights) for c in cases]
    got = _sql_rewards(engine, cases, weights)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            assert g == pytest.approx(e, rel=1e-12, abs=1e-12)
