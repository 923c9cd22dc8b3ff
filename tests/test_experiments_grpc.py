"""Experiments end to end: real servers (subprocesses, 2 workers, restarts) over real gRPC."""

from __future__ import annotations

import json
import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from banditroute.service.config import libpq_url
from banditroute.service.experiments.assignment import bucket_of, initial_allocation, rebalance
from banditroute.service.experiments.cli import experiments_app
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import free_port, put_models, spawn_server

TOKEN = "experiments-test-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)
ENV = {"BANDITROUTE_ADMIN_TOKEN": TOKEN}
# Named like the arms PutPolicy validates `fixed` policies against (see the report: the check
# looks at hyperparameter "arm", the policy's is "model").
GOOD, BAD, MEH = "model-a", "model-b", "model-c"
MODELS = (GOOD, BAD, MEH)
ROUTE = "exp-route"


def _fresh_channel(address: str) -> grpc.Channel:
    # A private subchannel pool forces a new TCP connection, so SO_REUSEPORT spreads channels
    # over the workers.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def _setup(admin: admin_pb2_grpc.AdminStub) -> None:
    put_models(admin, MODELS, ADMIN)
    for name, algorithm, hp in [
        ("lin", "linucb", {}),
        ("ts", "thompson", {}),
        ("eps", "epsilon_greedy", {}),
        ("always-good", "fixed", {"model": GOOD}),
        ("always-bad", "fixed", {"model": BAD}),
        ("also-good", "fixed", {"model": GOOD}),
    ]:
        req = admin_pb2.PutPolicyRequest(name=name, algorithm=algorithm, seed=3)
        req.hyperparameters.update(hp)
        admin.PutPolicy(req, metadata=ADMIN)
    admin.PutRoute(
        admin_pb2.PutRouteRequest(
            route=admin_pb2.RouteConfig(name=ROUTE, policy="lin", models=list(MODELS))
        ),
        metadata=ADMIN,
    )


def _variant(name: str, policy: str, weight: float = 0.0, **kw: Any) -> admin_pb2.Variant:
    return admin_pb2.Variant(name=name, policy=policy, weight=weight, **kw)


def _create(
    admin: admin_pb2_grpc.AdminStub, name: str, variants: list[admin_pb2.Variant], **kw: Any
) -> admin_pb2.Experiment:
    return admin.CreateExperiment(
        admin_pb2.CreateExperimentRequest(
            name=name, route=ROUTE, variants=variants, start=True, actor="pytest", **kw
        ),
        metadata=ADMIN,
    )


def _wait_until(check: Callable[[], bool], polls: int = 300) -> bool:
    for _ in range(polls):
        if check():
            return True
        time.sleep(0.05)
    return False


def _route(stub: router_pb2_grpc.RouterStub, unit: str) -> router_pb2.RouteResponse:
    return stub.Route(
        router_pb2.RouteRequest(prompt=f"hello from {unit}", route=ROUTE, unit_id=unit)
    )


def _route_eventually(
    stub: router_pb2_grpc.RouterStub, unit: str, deadline: float
) -> router_pb2.RouteResponse:
    """Route, allowing a worker that has not yet applied the new config to say NOT_FOUND."""
    while True:
        try:
            return _route(stub, unit)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _route_when_running(address: str, name: str) -> None:
    """Experiments reach a process with its config reload; wait for the first assignment."""
    with grpc.insecure_channel(address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        assert _wait_until(lambda: _route(stub, "probe").experiment == name)


@pytest.fixture
def server(fresh_db_url: str) -> Iterator[Any]:
    srv = spawn_server(fresh_db_url, env=ENV)
    try:
        with grpc.insecure_channel(srv.address) as ch:
            _setup(admin_pb2_grpc.AdminStub(ch))
        yield srv
    finally:
        srv.stop()


def _two_free_ports() -> int:
    """A port p with p and p + 1 free (the metrics ports of workers 0 and 1)."""
    import socket

    for _ in range(50):
        base = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two consecutive free ports")


def _metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2):
            return True
    except OSError:
        return False


def _decisions_served(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("banditroute_decisions_total{")
    )


def test_experiments_sticky_across_two_workers_and_a_restart(fresh_db_url: str) -> None:
    metrics = _two_free_ports()
    srv = spawn_server(
        fresh_db_url, workers=2, env={**ENV, "BANDITROUTE_METRICS_PORT": str(metrics)}
    )
    units = [f"user-{i}" for i in range(80)]
    try:
        # Health answers once one worker serves; the other may still be starting, and then
        # every Route below would reach the first. Its metrics endpoint says when it is up.
        assert _wait_until(lambda: _metrics_up(metrics) and _metrics_up(metrics + 1), 1200), (
            srv.log()
        )
        with grpc.insecure_channel(srv.address) as ch:
            admin = admin_pb2_grpc.AdminStub(ch)
            _setup(admin)
            exp = _create(
                admin, "sticky", [_variant("a", "lin", 50, control=True), _variant("b", "ts", 50)]
            )
        alloc = initial_allocation({"a": 50, "b": 50})
        expected = {u: alloc.owner(bucket_of(exp.salt, u)) for u in units}
        assert set(expected.values()) == {"a", "b"}
        # Each worker reloads the experiment on its own; wait until both serve it.
        seen: dict[str, set[str]] = {u: set() for u in units}
        deadline = time.monotonic() + 30
        for rnd in range(2):
            for k, unit in enumerate(units):
                with _fresh_channel(srv.address) as ch:
                    stub = router_pb2_grpc.RouterStub(ch)
                    resp = _route_eventually(stub, unit, deadline)
                    while resp.experiment != "sticky" and time.monotonic() < deadline:
                        time.sleep(0.05)
                        resp = _route_eventually(stub, unit, deadline)
                    seen[unit].add(resp.variant)
                    if rnd == 0 and k == 0:
                        assert resp.experiment == "sticky"
        assert all(seen[u] == {expected[u]} for u in units)
        # Both worker processes answered some of these requests.
        assert _decisions_served(metrics) > 0 and _decisions_served(metrics + 1) > 0
    finally:
        srv.stop()
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        rows = conn.execute(
            "SELECT unit_id, variant, bucket, policy_name FROM decisions "
            "WHERE experiment = 'sticky' AND unit_id LIKE 'user-%'"
        ).fetchall()
    assert len(rows) == 2 * len(units)
    for unit, variant, bucket, policy in rows:
        assert variant == expected[unit] and bucket == bucket_of("sticky", unit)
        assert policy == {"a": "lin", "b": "ts"}[variant]
    # Restart on the same database: the same units land in the same variants.
    srv = spawn_server(fresh_db_url, env=ENV)
    try:
        _route_when_running(srv.address, "sticky")
        with grpc.insecure_channel(srv.address) as ch:
            stub = router_pb2_grpc.RouterStub(ch)
            assert all(_route(stub, u).variant == expected[u] for u in units)
    finally:
        srv.stop()


def test_experiments_ramp_moves_only_the_expected_units(server: Any) -> None:
    units = [f"u{i}" for i in range(400)]
    with grpc.insecure_channel(server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        stub = router_pb2_grpc.RouterStub(ch)
        _create(
            admin,
            "ramp",
            [_variant("control", "lin", 95, control=True), _variant("treatment", "ts", 5)],
        )
        _route_when_running(server.address, "ramp")
        before = {u: _route(stub, u).variant for u in units}
        alloc = initial_allocation({"control": 95, "treatment": 5})
        for c, t in [(80, 20), (50, 50)]:
            admin.RampExperiment(
                admin_pb2.RampExperimentRequest(
                    name="ramp", weights={"control": c, "treatment": t}, actor="pytest"
                ),
                metadata=ADMIN,
            )
            alloc = rebalance(alloc, {"control": c, "treatment": t})
            # Wait for the new weights to reach the server (config reload).
            probe = next(u for u in units if alloc.owner(bucket_of("ramp", u)) != before[u])
            assert _wait_until(lambda p=probe: _route(stub, p).variant == "treatment")
            after = {u: _route(stub, u).variant for u in units}
            moved = [u for u in units if after[u] != before[u]]
            assert all(before[u] == "control" and after[u] == "treatment" for u in moved)
            share = (t - (20 if c == 50 else 5)) / 100
            sd = math.sqrt(len(units) * share * (1 - share))
            assert abs(len(moved) - len(units) * share) < 4 * sd
            before = after


def test_experiments_shadow_variants_never_serve(server: Any, fresh_db_url: str) -> None:
    with grpc.insecure_channel(server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        stub = router_pb2_grpc.RouterStub(ch)
        exp = _create(
            admin,
            "shadowed",
            [
                _variant("control", "always-good", 100, control=True),
                _variant("shadow", "always-bad", shadow=True),
            ],
        )
        shadow_version = next(v.policy_version for v in exp.variants if v.name == "shadow")
        _route_when_running(server.address, "shadowed")
        responses = [_route(stub, f"s{i}") for i in range(100)]
    assert {r.model for r in responses} == {GOOD}
    assert {(r.variant, r.policy) for r in responses} == {("control", "always-good")}
    # Route answers before its decision commits (durable_decisions = false): wait for them.
    deadline = time.monotonic() + 20.0
    while True:
        with psycopg.connect(libpq_url(fresh_db_url)) as conn:
            shadows = conn.execute(
                "SELECT model, shadow FROM decisions WHERE experiment = 'shadowed'"
            ).fetchall()
        if len(shadows) >= 100 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    key = f"always-bad@{shadow_version}"
    assert len(shadows) >= 100
    for model, shadow in shadows:
        assert model == GOOD
        assert shadow[key]["model"] == BAD and shadow[key]["propensity"] == 1.0


def _drive(address: str, units: list[str], quality: dict[str, float], seed: int = 0) -> int:
    """Route each unit once and report a noisy quality around the chosen model's level."""
    rng = np.random.default_rng(seed)
    with grpc.insecure_channel(address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        for u in units:
            resp = _route(stub, u)
            q = float(np.clip(quality[resp.model] + rng.normal(0.0, 0.15), 0.0, 1.0))
            stub.RecordOutcome(
                router_pb2.RecordOutcomeRequest(
                    decision_id=resp.decision_id, quality=q, cost_usd=0.001, latency_ms=100.0
                )
            )
    return len(units)


def _status(admin: admin_pb2_grpc.AdminStub, name: str) -> admin_pb2.ExperimentStatus:
    return admin.GetExperimentStatus(
        admin_pb2.GetExperimentStatusRequest(name=name), metadata=ADMIN
    )


@pytest.mark.parametrize(
    ("treatment", "stops"), [("always-bad", True), ("also-good", False)], ids=["worse", "equal"]
)
def test_experiments_guardrail_stops_worse_not_equal(
    server: Any, treatment: str, stops: bool
) -> None:
    quality = {GOOD: 0.8, BAD: 0.4, MEH: 0.6}
    with grpc.insecure_channel(server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        _create(
            admin,
            "guarded",
            [
                _variant("control", "always-good", 50, control=True),
                _variant("treatment", treatment, 50),
            ],
            guardrail=admin_pb2.Guardrail(max_reward_drop=0.05, confidence=0.95, min_samples=50),
        )
        _route_when_running(server.address, "guarded")
        _drive(server.address, [f"g{i}" for i in range(200)], quality)
        status = _status(admin, "guarded")
        by = {v.variant: v for v in status.variants}
        assert by["treatment"].stopped is stops
        if stops:
            assert "always-valid" in by["treatment"].stop_reason
            assert by["treatment"].reward_diff_vs_control.ci_high < -0.05
            exp = status.experiment
            assert {v.name: v.weight for v in exp.variants} == {"control": 100, "treatment": 0}


def test_experiments_promote_keeps_learned_state(server: Any) -> None:
    with grpc.insecure_channel(server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        exp = _create(
            admin,
            "promo",
            [_variant("control", "lin", 50, control=True), _variant("treatment", "ts", 50)],
        )
        ts_version = next(v.policy_version for v in exp.variants if v.name == "treatment")
        _route_when_running(server.address, "promo")
        _drive(server.address, [f"p{i}" for i in range(120)], {GOOD: 0.9, BAD: 0.1, MEH: 0.5})
        status = _status(admin, "promo")
        treated = next(v.outcomes for v in status.variants if v.variant == "treatment")
        assert treated > 20

        def state() -> admin_pb2.PolicyState:
            return admin.GetPolicyState(
                admin_pb2.GetPolicyStateRequest(name="ts", version=ts_version), metadata=ADMIN
            )

        assert _wait_until(lambda: state().updates == treated)
        learned = {a.model: (a.updates, a.mean_reward) for a in state().arms}
        promoted = admin.PromoteVariant(
            admin_pb2.PromoteVariantRequest(name="promo", variant="treatment", actor="pytest"),
            metadata=ADMIN,
        )
        assert promoted.state == admin_pb2.EXPERIMENT_STATE_STOPPED
        route = next(
            r
            for r in admin.ListRoutes(admin_pb2.ListRoutesRequest(), metadata=ADMIN).routes
            if r.name == ROUTE
        )
        assert (route.policy, route.policy_version) == ("ts", ts_version)
        stub = router_pb2_grpc.RouterStub(ch)
        assert _wait_until(lambda: _route(stub, "after").policy == "ts")
        resp = _route(stub, "after-2")
        assert (resp.policy, resp.policy_version, resp.experiment) == ("ts", ts_version, "")
        # Same learned state right after promotion: nothing was reset.
        assert {a.model: (a.updates, a.mean_reward) for a in state().arms} == learned
        stub.RecordOutcome(
            router_pb2.RecordOutcomeRequest(decision_id=resp.decision_id, quality=1.0)
        )
        assert _wait_until(lambda: state().updates == treated + 1)
        rolled = admin.RollbackExperiment(
            admin_pb2.RollbackExperimentRequest(name="promo", actor="pytest"), metadata=ADMIN
        )
        assert rolled.stop_reason.startswith("rolled back")
        route = next(
            r
            for r in admin.ListRoutes(admin_pb2.ListRoutesRequest(), metadata=ADMIN).routes
            if r.name == ROUTE
        )
        assert route.policy == "lin"


def _code(call: Callable[[], Any]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        assert exc.details()  # a clear message always comes with the code
        return exc.code()
    return grpc.StatusCode.OK


def test_experiments_invalid_admin_calls_get_clear_status_codes(server: Any) -> None:
    INVALID = grpc.StatusCode.INVALID_ARGUMENT
    with grpc.insecure_channel(server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        ok = [_variant("c", "lin", 50, control=True), _variant("t", "ts", 50)]

        def create(
            name: str = "x", variants: list[admin_pb2.Variant] | None = None, **kw: Any
        ) -> Callable[[], Any]:
            req = admin_pb2.CreateExperimentRequest(
                name=name,
                route=kw.pop("route", ROUTE),
                variants=ok if variants is None else variants,
                **kw,
            )
            return lambda: admin.CreateExperiment(req, metadata=ADMIN)

        def rpc(method: str, request: Any) -> Callable[[], Any]:
            return lambda: getattr(admin, method)(request, metadata=ADMIN)

        def ramp(name: str, **weights: float) -> Callable[[], Any]:
            return rpc(
                "RampExperiment", admin_pb2.RampExperimentRequest(name=name, weights=weights)
            )

        def set_state(state: int = 0) -> Callable[[], Any]:
            request = admin_pb2.SetExperimentStateRequest(name="taken", state=state)
            return rpc("SetExperimentState", request)

        def promote(variant: str = "") -> Callable[[], Any]:
            return rpc(
                "PromoteVariant", admin_pb2.PromoteVariantRequest(name="taken", variant=variant)
            )

        nan = float("nan")
        cases: list[tuple[str, Callable[[], Any], grpc.StatusCode]] = [
            (
                "no-token",
                lambda: admin.ListExperiments(admin_pb2.ListExperimentsRequest()),
                grpc.StatusCode.UNAUTHENTICATED,
            ),
            ("empty-name", create(name=""), INVALID),
            (
                "weights-90",
                create(variants=[_variant("c", "lin", 60), _variant("t", "ts", 30)]),
                INVALID,
            ),
            (
                "negative",
                create(variants=[_variant("c", "lin", 110), _variant("t", "ts", -10)]),
                INVALID,
            ),
            ("nan", create(variants=[_variant("c", "lin", nan), _variant("t", "ts", 50)]), INVALID),
            (
                "duplicate",
                create(variants=[_variant("c", "lin", 50), _variant("c", "ts", 50)]),
                INVALID,
            ),
            (
                "shadow-weight",
                create(variants=[_variant("c", "lin", 100), _variant("s", "ts", 10, shadow=True)]),
                INVALID,
            ),
            (
                "two-controls",
                create(
                    variants=[
                        _variant("c", "lin", 50, control=True),
                        _variant("t", "ts", 50, control=True),
                    ]
                ),
                INVALID,
            ),
            ("unknown-policy", create(variants=[_variant("c", "nope", 100)]), INVALID),
            (
                "unknown-version",
                create(variants=[_variant("c", "lin", 100, policy_version=99)]),
                INVALID,
            ),
            ("no-variants", create(variants=[]), INVALID),
            (
                "bad-confidence",
                create(guardrail=admin_pb2.Guardrail(max_reward_drop=0.1, confidence=1.5)),
                INVALID,
            ),
            ("unknown-route", create(route="nope"), grpc.StatusCode.NOT_FOUND),
        ]
        for case, call, code in cases:
            assert _code(call) == code, case
        assert _code(create(name="taken", start=True)) == grpc.StatusCode.OK
        later: list[tuple[str, Callable[[], Any], grpc.StatusCode]] = [
            ("name-taken", create(name="taken"), grpc.StatusCode.ALREADY_EXISTS),
            ("route-busy", create(name="second", start=True), grpc.StatusCode.FAILED_PRECONDITION),
            ("ramp-unknown", ramp("nope", c=100), grpc.StatusCode.NOT_FOUND),
            ("ramp-variant", ramp("taken", zz=100), INVALID),
            ("ramp-sum", ramp("taken", c=70), INVALID),
            ("state-unspecified", set_state(), INVALID),
            (
                "state-draft",
                set_state(admin_pb2.EXPERIMENT_STATE_DRAFT),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            ("promote-variant", promote("zz"), grpc.StatusCode.NOT_FOUND),
            ("promote-empty", promote(), INVALID),
            ("status-unknown", lambda: _status(admin, "nope"), grpc.StatusCode.NOT_FOUND),
            ("status-empty", lambda: _status(admin, ""), INVALID),
        ]
        for case, call, code in later:
            assert _code(call) == code, case
        set_state(admin_pb2.EXPERIMENT_STATE_STOPPED)()
        stopped: list[tuple[str, Callable[[], Any], grpc.StatusCode]] = [
            ("ramp-stopped", ramp("taken", c=100, t=0), grpc.StatusCode.FAILED_PRECONDITION),
            ("promote-stopped", promote("t"), grpc.StatusCode.FAILED_PRECONDITION),
            (
                "resume-stopped",
                set_state(admin_pb2.EXPERIMENT_STATE_RUNNING),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
            (
                "rollback-stopped",
                rpc("RollbackExperiment", admin_pb2.RollbackExperimentRequest(name="taken")),
                grpc.StatusCode.FAILED_PRECONDITION,
            ),
        ]
        for case, call, code in stopped:
            assert _code(call) == code, case


def test_experiments_cli_status_table_and_json(server: Any) -> None:
    runner = CliRunner()
    common = ["--address", server.address, "--admin-token", TOKEN]
    created = runner.invoke(
        experiments_app,
        [
            "create",
            "cli-exp",
            "--route",
            ROUTE,
            "--variant",
            "base=lin:50:control",
            "--variant",
            "new=ts:50",
            "--start",
            *common,
        ],
    )
    assert created.exit_code == 0, created.output
    _route_when_running(server.address, "cli-exp")
    _drive(server.address, [f"c{i}" for i in range(40)], {GOOD: 1.0, BAD: 0.0, MEH: 0.5})
    table = runner.invoke(experiments_app, ["status", "cli-exp", *common])
    assert table.exit_code == 0, table.output
    assert "base" in table.output and "new" in table.output and "mSPRT" in table.output
    as_json = runner.invoke(experiments_app, ["status", "cli-exp", "--json", *common])
    data = json.loads(as_json.output)
    counts = {v["variant"]: v["decisions"] for v in data["variants"]}
    assert int(counts["base"]) + int(counts["new"]) >= 40
    ramped = runner.invoke(experiments_app, ["ramp", "cli-exp", "base=90", "new=10", *common])
    assert ramped.exit_code == 0 and "90%" in ramped.output
    bad = runner.invoke(experiments_app, ["ramp", "cli-exp", "base=80", *common])
    assert bad.exit_code == 1 and "INVALID_ARGUMENT" in bad.output
    listed = runner.invoke(experiments_app, ["list", *common])
    assert "cli-exp" in listed.output
    stopped = runner.invoke(experiments_app, ["rollback", "cli-exp", "--reason", "demo", *common])
    assert stopped.exit_code == 0 and "rolled back: demo" in stopped.output
