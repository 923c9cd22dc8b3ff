"""Experiment lifecycle, audit, resolver reload, statistics and guardrails on real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Engine, text

from banditroute.service.core.assignment import PolicyKey, RouteEntry
from banditroute.service.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from banditroute.service.experiments.assignment import VariantSpec
from banditroute.service.experiments.guardrails import GuardrailConfig
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.resolver import ExperimentCache
from banditroute.service.experiments.stats import experiment_status
from banditroute.service.storage.database import create_engine

ROUTE = RouteEntry(tenant="", name="default", policy=PolicyKey("lin", 1), models=())


@pytest.fixture
def engine(fresh_db_url: str) -> Iterator[Engine]:
    eng = create_engine(fresh_db_url)
    with eng.begin() as c:
        c.execute(
            text(
                "INSERT INTO policies (name, version, algorithm) VALUES "
                "('lin', 1, 'linucb'), ('ts', 1, 'thompson'), ('ts', 2, 'thompson')"
            )
        )
        c.execute(
            text(
                "INSERT INTO routes (tenant, name, policy_name, policy_version) "
                "VALUES ('', 'default', 'lin', 0)"
            )
        )
    yield eng
    eng.dispose()


def _ab(
    control: float = 50, treatment: float = 50, treatment_policy: str = "ts", shadow: bool = True
) -> list[VariantSpec]:
    """Control ``lin``, treatment ``treatment_policy`` and (``shadow``) a shadow ``ts@1``."""
    return [
        VariantSpec("control", "lin", 0, control, control=True),
        VariantSpec("treatment", treatment_policy, 0, treatment),
        *([VariantSpec("shadow", "ts", 1, 0, shadow=True)] if shadow else []),
    ]


def _events(engine: Engine, name: str) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return [
            (r.action, r.actor)
            for r in c.execute(
                text(
                    "SELECT e.action, e.actor FROM experiment_events e JOIN experiments x "
                    "ON x.id = e.experiment_id WHERE x.name = :n ORDER BY e.id"
                ),
                {"n": name},
            )
        ]


def test_experiments_lifecycle_is_audited(engine: Engine) -> None:
    m = ExperimentManager(engine)
    exp = m.create("e1", "", "default", _ab(), actor="alice")
    assert exp.state == "draft"
    # Policy version 0 resolves to the latest version at creation.
    assert exp.variant("treatment").policy_version == 2
    assert m.set_state("e1", "running", actor="bob").state == "running"
    assert m.set_state("e1", "paused", actor="bob").state == "paused"
    assert m.set_state("e1", "running", actor="carol").state == "running"
    stopped = m.set_state("e1", "stopped", actor="dave", reason="done")
    assert stopped.state == "stopped" and stopped.stop_reason == "done"
    assert _events(engine, "e1") == [
        ("create", "alice"),
        ("start", "bob"),
        ("pause", "bob"),
        ("resume", "carol"),
        ("stop", "dave"),
    ]
    with engine.connect() as c:
        changes = c.execute(
            text("SELECT count(*) FROM config_changes WHERE entity = 'experiment'")
        ).scalar_one()
    assert changes == 5  # every change bumps the config version other processes follow


@pytest.mark.parametrize(
    ("start", "target"),
    [("draft", "paused"), ("stopped", "running"), ("stopped", "paused")],
    ids=["draft-to-paused", "stopped-to-running", "stopped-to-paused"],
)
def test_experiments_forbidden_transitions_fail_precondition(
    engine: Engine, start: str, target: str
) -> None:
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab())
    if start == "stopped":
        m.set_state("e1", "stopped")
    with pytest.raises(FailedPrecondition, match="cannot become"):
        m.set_state("e1", target)


def test_experiments_create_errors(engine: Engine) -> None:
    m = ExperimentManager(engine)
    with pytest.raises(NotFound, match="route"):
        m.create("e1", "", "nope", _ab())
    with pytest.raises(InvalidArgument, match="unknown policy"):
        m.create("e1", "", "default", [VariantSpec("a", "missing", 0, 100)])
    with pytest.raises(InvalidArgument, match="unknown policy"):
        m.create("e1", "", "default", [VariantSpec("a", "ts", 7, 100)])
    with pytest.raises(InvalidArgument, match="experiment name"):
        m.create("bad name!", "", "default", _ab())
    with pytest.raises(InvalidArgument, match="control"):
        m.create(
            "e1",
            "",
            "default",
            [VariantSpec("a", "lin", 0, 50), VariantSpec("b", "ts", 0, 50)],
            GuardrailConfig(max_reward_drop=0.1),
        )
    m.create("e1", "", "default", _ab(), start=True)
    with pytest.raises(AlreadyExists):
        m.create("e1", "", "default", _ab())
    with pytest.raises(FailedPrecondition, match="already has an active experiment"):
        m.create("e2", "", "default", _ab(), start=True)
    m.create("e3", "", "default", _ab())
    with pytest.raises(FailedPrecondition, match="already has an active experiment"):
        m.set_state("e3", "running")
    with pytest.raises(NotFound):
        m.get("missing")


def test_experiments_ramp_validates_and_records_moved_fraction(engine: Engine) -> None:
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(95, 5), start=True)
    ramped = m.ramp("e1", {"control": 80, "treatment": 20}, actor="ops")
    assert {v.name: v.weight for v in ramped.variants if not v.shadow} == {
        "control": 80,
        "treatment": 20,
    }
    with engine.connect() as c:
        detail = c.execute(
            text("SELECT detail FROM experiment_events WHERE action = 'ramp'")
        ).scalar_one()
    assert detail["moved_fraction"] == pytest.approx(0.15)
    with pytest.raises(InvalidArgument, match="sum to 100"):
        m.ramp("e1", {"treatment": 30})
    with pytest.raises(InvalidArgument, match="no variant"):
        m.ramp("e1", {"nope": 10})
    with pytest.raises(InvalidArgument, match="shadow"):
        m.ramp("e1", {"shadow": 10, "control": 70})
    with pytest.raises(InvalidArgument, match="finite"):
        m.ramp("e1", {"treatment": float("nan")})
    with pytest.raises(InvalidArgument, match="at least one"):
        m.ramp("e1", {})
    m.set_state("e1", "stopped")
    with pytest.raises(FailedPrecondition, match="stopped"):
        m.ramp("e1", {"control": 50, "treatment": 50})


def _route_policy(engine: Engine) -> tuple[str, int]:
    with engine.connect() as c:
        row = c.execute(
            text("SELECT policy_name, policy_version FROM routes WHERE name = 'default'")
        ).one()
    return row[0], row[1]


def test_experiments_promote_pins_the_variant_version_and_rollback_restores(
    engine: Engine,
) -> None:
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(), start=True)
    with pytest.raises(NotFound, match="variant"):
        m.promote("e1", "nope")
    promoted = m.promote("e1", "treatment", actor="alice")
    assert promoted.state == "stopped" and promoted.promoted_variant == "treatment"
    assert _route_policy(engine) == ("ts", 2)
    with pytest.raises(FailedPrecondition, match="stopped"):
        m.promote("e1", "control")
    rolled = m.rollback("e1", actor="bob", reason="regression")
    assert rolled.stop_reason == "rolled back: regression"
    assert _route_policy(engine) == ("lin", 0)
    with pytest.raises(FailedPrecondition, match="nothing to roll back"):
        m.rollback("e1")
    assert [a for a, _ in _events(engine, "e1")][-2:] == ["promote", "rollback"]


def test_experiments_resolver_serves_running_experiments_only(engine: Engine) -> None:
    m = ExperimentManager(engine)
    cache = ExperimentCache()
    m.create("e1", "", "default", _ab())
    with engine.connect() as c:
        cache.reload(c)
    assert cache.resolve("", ROUTE, "u1").experiment == ""  # draft: route's own policy
    m.set_state("e1", "running")
    with engine.connect() as c:
        cache.reload(c)
    seen = {cache.resolve("", ROUTE, f"u{i}").variant for i in range(200)}
    assert seen == {"control", "treatment"}  # shadow variants never serve
    a = cache.resolve("", ROUTE, "u1")
    assert a.experiment == "e1" and a.shadows == (PolicyKey("ts", 1),)
    assert cache.policy_keys() == {PolicyKey("lin", 1), PolicyKey("ts", 2), PolicyKey("ts", 1)}
    m.set_state("e1", "paused")
    with engine.connect() as c:
        cache.reload(c)
    assert cache.resolve("", ROUTE, "u1").experiment == ""


def _log_traffic(engine: Engine, name: str, rewards: dict[str, float], n: int, seed: int) -> None:
    """Synthetic decisions with outcomes: each variant succeeds with its probability."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    rows_d, rows_o = [], []
    event = 0
    for i in range(n):
        for variant, p in rewards.items():
            event += 2
            did = uuid.uuid4()
            model = "a" if rng.random() < 0.5 else "b"
            r = float(rng.random() < p)
            rows_d.append(
                {"d": did, "t": now, "e": event, "v": variant, "m": model, "x": name, "i": i}
            )
            rows_o.append({"e": event + 1, "d": did, "t": now, "r": r, "l": 100.0 + i % 50})
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO decisions (decision_id, created_at, event_id, tenant, route, "
                "unit_id, policy_name, policy_version, experiment, variant, bucket, model, "
                "propensity, candidates, scores, probabilities, estimated_cost_usd, features, "
                "prompt_hash, shadow) VALUES (:d, :t, :e, '', 'default', 'u' || :i, 'x', 1, "
                ":x, :v, 0, :m, 0.5, ARRAY['a','b'], ARRAY[0.0, 0.0], ARRAY[0.5, 0.5], 0.001, "
                '\'\'::bytea, \'\'::bytea, \'{"ts@1": {"model": "a", "propensity": 1.0, '
                '"probabilities": {"a": 1.0, "b": 0.0}}}\'::jsonb)'
            ),
            rows_d,
        )
        c.execute(
            text(
                "INSERT INTO outcomes (event_id, decision_id, decision_created_at, tenant, "
                "quality, cost_usd, latency_ms, reward) VALUES (:e, :d, :t, '', :r, 0.001, :l, :r)"
            ),
            rows_o,
        )


GUARD = GuardrailConfig(max_reward_drop=0.05, confidence=0.95, min_samples=100)


@pytest.mark.parametrize("seed", [1, 2])
def test_experiments_guardrail_stops_a_worse_variant(engine: Engine, seed: int) -> None:
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(), GUARD, start=True)
    _log_traffic(engine, "e1", {"control": 0.7, "treatment": 0.4}, 400, seed)
    stopped = m.check_guardrails("e1")
    assert [v for v, _ in stopped] == ["treatment"]
    exp = m.get("e1")
    treatment = exp.variant("treatment")
    assert treatment.stopped and "always-valid" in treatment.stop_reason
    assert exp.variant("control").weight == 100 and exp.allocation is not None
    assert exp.allocation.counts() == {"control": 10_000}
    assert _events(engine, "e1")[-1] == ("guardrail_stop", "guardrail")
    assert m.check_guardrails("e1") == []  # idempotent
    with pytest.raises(FailedPrecondition, match="stopped"):
        m.ramp("e1", {"control": 50, "treatment": 50})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_experiments_guardrail_keeps_an_equal_variant(engine: Engine, seed: int) -> None:
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(), GUARD, start=True)
    _log_traffic(engine, "e1", {"control": 0.6, "treatment": 0.6}, 400, seed)
    assert m.check_guardrails("e1") == []
    assert not m.get("e1").variant("treatment").stopped


def test_experiments_status_numbers(engine: Engine) -> None:
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(), start=True)
    _log_traffic(engine, "e1", {"control": 0.7, "treatment": 0.3}, 300, 0)
    status = experiment_status(engine, m.get("e1"))
    by = {s.variant.name: s for s in status.variants}
    assert by["control"].decisions == by["control"].outcomes == 300
    assert by["control"].reward.low < by["control"].reward.estimate < by["control"].reward.high
    assert by["control"].reward_diff_vs_control is None
    diff = by["treatment"].reward_diff_vs_control
    assert diff is not None and diff.high < 0 and diff.p_value < 0.05
    assert by["treatment"].latency_p50_ms == pytest.approx(124.5, abs=1.0)
    # The shadow logged on every decision (600) and always picks model "a": its off-policy
    # value is the mean reward of decisions that chose "a", re-weighted by 1 / 0.5.
    shadow = by["shadow"]
    assert shadow.decisions == 600 and shadow.ips is not None and shadow.snips is not None
    assert shadow.ips.n == 600 and 0.3 < shadow.snips.value < 0.7
    assert "mSPRT" in status.method


def test_experiments_guardrail_loop_stops_worse_variants_in_the_background(
    engine: Engine,
) -> None:
    import asyncio

    from banditroute.service.experiments.guardrails import guardrail_loop

    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(), GUARD, start=True)
    _log_traffic(engine, "e1", {"control": 0.7, "treatment": 0.4}, 400, 5)

    async def run() -> bool:
        task = asyncio.create_task(guardrail_loop(m, interval_s=0.05))
        try:
            for _ in range(600):  # a generous bound; stops as soon as the loop acted
                if await asyncio.to_thread(lambda: m.get("e1").variant("treatment").stopped):
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            task.cancel()

    assert asyncio.run(run())
    assert m.check_all_guardrails() == []


def test_experiments_stats_score_every_variant_with_the_control_weights(engine: Engine) -> None:
    # The treatment's policy weighs cost heavily; its stored outcome rewards say so. The status
    # compares on the control's scale (cost weight 0), with feedback merged in.
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO policies (name, version, algorithm, cost_weight, feedback_weight) "
                "VALUES ('costly', 1, 'linucb', 100, 0.5)"
            )
        )
        c.execute(text("UPDATE policies SET feedback_weight = 0.5 WHERE name = 'lin'"))
    m = ExperimentManager(engine)
    m.create("e1", "", "default", _ab(treatment_policy="costly", shadow=False), start=True)
    _log_traffic(engine, "e1", {"control": 0.5, "treatment": 0.5}, 200, 3)
    with engine.begin() as c:
        c.execute(text("UPDATE outcomes SET reward = -1"))  # what a cost-heavy policy stored
        quality = c.execute(
            text(
                "SELECT avg(o.quality) FROM outcomes o JOIN decisions d "
                "ON d.decision_id = o.decision_id WHERE d.variant = 'treatment'"
            )
        ).scalar_one()
        c.execute(
            text(
                "INSERT INTO feedback (event_id, decision_id, decision_created_at, tenant, "
                "feedback_key, rating) SELECT 100000 + row_number() OVER (), o.decision_id, "
                "o.decision_created_at, '', 'source:user', 1.0 FROM outcomes o JOIN decisions d "
                "ON d.decision_id = o.decision_id WHERE d.variant = 'treatment'"
            )
        )
    by = {s.variant.name: s for s in experiment_status(engine, m.get("e1")).variants}
    # reward = 0.5 * quality + 0.5 * rating (1.0), minus 0 * cost: the control's yardstick.
    expected = 0.5 * float(quality) + 0.5
    assert by["treatment"].reward.estimate == pytest.approx(expected)
    assert by["treatment"].quality.estimate == pytest.approx(float(quality))
