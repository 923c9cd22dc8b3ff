"""Learning through the event log: restart rebuilds state exactly, processes learn from each
other, writes fail with UNAVAILABLE while the database is down."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import grpc
import psycopg
import pytest
from psycopg import sql

from banditroute.learners import state as policy_state
from banditroute.service.config import libpq_url
from banditroute.service.core.follower import rebuild_policy
from banditroute.service.storage.database import create_engine
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, database_name, register_demo, spawn_server


def _eventually(check: Callable[[], bool], polls: int = 300) -> bool:
    for _ in range(polls):
        if check():
            return True
        time.sleep(0.05)
    return False


def _traffic(address: str, n: int, seed: int, feedback_every: int = 3) -> int:
    """Route ``n`` prompts, report outcomes (and some feedback); returns the last event id."""
    rng = random.Random(seed)
    last = 0
    with grpc.insecure_channel(address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        for i in range(n):
            task = rng.choice(["qa", "code", ""])  # a group per task, and requests without
            reply = router.Route(
                router_pb2.RouteRequest(
                    prompt=f"prompt {rng.randrange(50)}",
                    numeric_context={"len": float(rng.randrange(10))},
                    categorical_context={"task": task} if task else {},
                )
            )
            out = router.RecordOutcome(
                router_pb2.RecordOutcomeRequest(
                    decision_id=reply.decision_id,
                    quality=rng.random(),
                    output_tokens=rng.randrange(10, 500),
                    latency_ms=rng.uniform(100, 2000),
                )
            )
            last = out.event_id
            if i % feedback_every == 0:
                fb = router.SubmitFeedback(
                    router_pb2.SubmitFeedbackRequest(
                        decision_id=reply.decision_id, rating=rng.random(), source="user"
                    )
                )
                last = fb.event_id
    return last


def _live_state(server: InProcessServer) -> tuple[bytes, int]:
    async def read() -> tuple[bytes, int]:
        await server.app.follower.catch_up()
        cfg = server.app.follower.config
        live = server.app.registry.get(cfg.routes[("", "default")].policy)
        assert live is not None
        return policy_state.dumps(live.policy), live.last_event_id

    result: tuple[bytes, int] = server.call(read())
    return result


def test_restart_rebuilds_policy_state_bit_identically(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    first = InProcessServer(fresh_db_url, snapshot_every_events=7)
    try:
        _traffic(first.address, 20, seed=1)
        with grpc.insecure_channel(first.address) as channel:  # a model joins mid-stream
            admin_pb2_grpc.AdminStub(channel).PutModel(
                admin_pb2.PutModelRequest(
                    model=admin_pb2.Model(id="late-model", output_usd_per_mtok=1.0, enabled=True)
                ),
                metadata=first.admin_metadata,
            )
        last = _traffic(first.address, 40, seed=5)
        first.sync()
        before, position = _live_state(first)
        assert position >= last
        cfg = first.app.follower.config
        live = first.app.registry.get(cfg.routes[("", "default")].policy)
        assert live is not None and "late-model" in live.policy.arms  # it was explored
        assert set(live.policy._groups.rows) == {'{"task":"qa"}', '{"task":"code"}'}
    finally:
        first.stop()
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        # keep only snapshots well before the end, so the restart must replay a tail
        conn.execute("DELETE FROM policy_snapshots WHERE last_event_id > %s", (last - 10,))
        snaps = conn.execute(
            "SELECT max(last_event_id) FROM policy_snapshots WHERE policy_name = 'default'"
        ).fetchone()
    assert snaps is not None and snaps[0] is not None and snaps[0] < last
    second = InProcessServer(fresh_db_url, snapshot_every_events=7)
    try:
        after, _ = _live_state(second)
        cfg = second.app.follower.config
        spec = cfg.policies[cfg.routes[("", "default")].policy]
    finally:
        second.stop()
    engine = create_engine(fresh_db_url)
    try:
        scratch = policy_state.dumps(rebuild_policy(engine, spec, cfg.initial_arms(spec), dim=64))
    finally:
        engine.dispose()
    assert after == before  # snapshot + tail == the state before the restart
    assert scratch == before  # == a rebuild from the whole log
    assert (
        policy_state.loads(before).summary()
        != policy_state.loads(
            policy_state.dumps(rebuild_policy_empty(spec, cfg.initial_arms(spec)))
        ).summary()
    )


def rebuild_policy_empty(spec: Any, arms: list[str]) -> Any:
    from banditroute.service.core.policies import PolicyRegistry

    return PolicyRegistry(64).build(spec, arms)


def _policy_updates(address: str, token: str) -> int:
    with grpc.insecure_channel(address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        state = admin.GetPolicyState(
            admin_pb2.GetPolicyStateRequest(name="default"),
            metadata=(("authorization", f"Bearer {token}"),),
        )
        return int(state.updates)


@pytest.mark.slow
def test_two_server_processes_learn_from_each_others_outcomes(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    env = {"BANDITROUTE_ADMIN_TOKEN": "t"}
    a = spawn_server(fresh_db_url, env=env)
    b = spawn_server(fresh_db_url, env=env)
    try:
        assert _policy_updates(b.address, "t") == 0
        _traffic(a.address, 25, seed=2, feedback_every=1000)  # only A sees traffic
        assert _eventually(lambda: _policy_updates(b.address, "t") == 25)
        assert _policy_updates(a.address, "t") == 25
        _traffic(b.address, 5, seed=3, feedback_every=1000)  # and the other way round
        assert _eventually(lambda: _policy_updates(a.address, "t") == 30)
    finally:
        a.stop()
        b.stop()


def test_processes_learn_from_notify_alone_while_listening(fresh_db_url: str) -> None:
    # Polling is only the safety net of LISTEN/NOTIFY: with it a minute apart, B must still
    # learn A's outcomes at once, from the NOTIFY of their commit.
    register_demo(fresh_db_url)
    env = {
        "BANDITROUTE_ADMIN_TOKEN": "t",
        "BANDITROUTE_POLL_INTERVAL_MS": "60000",
        "BANDITROUTE_LISTENING_POLL_INTERVAL_MS": "60000",
    }
    a = spawn_server(fresh_db_url, env=env)
    b = spawn_server(fresh_db_url, env=env)
    try:
        _traffic(a.address, 10, seed=5, feedback_every=1000)
        assert _eventually(lambda: _policy_updates(b.address, "t") == 10)
    finally:
        a.stop()
        b.stop()


@pytest.mark.slow
def test_workers_share_one_port_and_learn_together(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    server = spawn_server(fresh_db_url, workers=2, env={"BANDITROUTE_ADMIN_TOKEN": "t"})
    try:
        _traffic(server.address, 20, seed=4, feedback_every=1000)

        def all_workers_learned() -> bool:
            # new connections are spread over the workers by SO_REUSEPORT
            return all(_policy_updates(server.address, "t") == 20 for _ in range(8))

        assert _eventually(all_workers_learned)
    finally:
        assert server.stop() == 0


def test_writes_are_unavailable_while_the_database_is_down(grpc_server: InProcessServer) -> None:
    name = database_name(grpc_server.db_url)
    admin_url = libpq_url(grpc_server.db_url).rsplit("/", 1)[0] + "/postgres"
    if "?" in grpc_server.db_url:
        admin_url += "?" + libpq_url(grpc_server.db_url).split("?", 1)[1]
    with grpc.insecure_channel(grpc_server.address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        did = router.Route(router_pb2.RouteRequest(prompt="before the outage")).decision_id
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name))
            )
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            try:
                req = router_pb2.RecordOutcomeRequest(decision_id=did, quality=1.0)
                with pytest.raises(grpc.RpcError) as err:
                    router.RecordOutcome(req)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                fb = router_pb2.SubmitFeedbackRequest(decision_id=did, rating=1.0)
                with pytest.raises(grpc.RpcError) as err:
                    router.SubmitFeedback(fb)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name))
                )

        def recovered() -> bool:
            try:
                router.RecordOutcome(req)
            except grpc.RpcError:
                return False
            return True

        assert _eventually(recovered)
