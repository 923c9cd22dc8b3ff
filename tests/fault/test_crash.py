"""kill -9 in the middle of a stream of 10,000 outcomes loses no acknowledged write, and the
policy rebuilt after the restart equals a from-scratch rebuild from the log, byte for byte.

Also: kill -9 of the whole service running on its embedded PostgreSQL leaves that PostgreSQL
running as a stale server; the next start adopts it and nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from banditroute.learners import state as policy_state
from banditroute.service.config import Settings, libpq_url
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.config_cache import load_config
from banditroute.service.core.follower import rebuild_policy
from banditroute.service.storage.database import create_engine
from banditroute.service.storage.embedded import EmbeddedPostgres
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2
from tests.fault.workload import resend_unacknowledged, retry_until_recorded, stream_until_killed
from tests.helpers import spawn_server

pytestmark = pytest.mark.fault

OUTCOMES = 10_000
KILL_AFTER_ACKS = 4_000
SNAPSHOT_EVERY = 1_000
CATCH_UP_POLLS = 600
POLL_PAUSE_S = 0.1


def _stored_outcomes(db_url: str) -> dict[str, tuple[float | None, bool | None]]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return {
            str(did): (quality, success)
            for did, quality, success in conn.execute(
                "SELECT decision_id, quality, success FROM outcomes"
            )
        }


def _assert_acknowledged_are_stored(
    db_url: str, acknowledged: dict[str, router_pb2.RecordOutcomeRequest]
) -> None:
    stored = _stored_outcomes(db_url)
    missing = [did for did in acknowledged if did not in stored]
    assert missing == [], f"{len(missing)} acknowledged outcomes lost"
    for did, request in acknowledged.items():
        assert stored[did] == (request.quality, request.success)


def _default_policy(address: str, metadata: Any) -> tuple[str, int]:
    with grpc.insecure_channel(address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        routes = admin.ListRoutes(admin_pb2.ListRoutesRequest(), metadata=metadata, timeout=30)
        route = next(r for r in routes.routes if r.name == "default")
        state = admin.GetPolicyState(
            admin_pb2.GetPolicyStateRequest(name=route.policy), metadata=metadata, timeout=30
        )
    return state.policy.name, state.policy.version


def _wait_caught_up(address: str, name: str, metadata: Any, db_url: str) -> admin_pb2.PolicyState:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(
            "SELECT max(event_id) FROM (SELECT event_id FROM outcomes UNION ALL "
            "SELECT event_id FROM feedback) e"
        ).fetchone()
    last = int(row[0]) if row and row[0] is not None else 0
    with grpc.insecure_channel(address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        for _ in range(CATCH_UP_POLLS):
            state = admin.GetPolicyState(
                admin_pb2.GetPolicyStateRequest(name=name), metadata=metadata, timeout=30
            )
            if state.last_event_id >= last:
                return state
            time.sleep(POLL_PAUSE_S)
    raise AssertionError(f"server never caught up with event {last}")


def _assert_policy_equals_rebuild(
    db_url: str, name: str, version: int, state: admin_pb2.PolicyState
) -> int:
    """Live summary equals a from-scratch rebuild; every snapshot equals the rebuild at its
    position byte for byte. Returns the number of snapshots compared."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            config = load_config(conn)
        spec = config.policies[PolicyKey(name, version)]
        dim = int(Settings.model_fields["feature_dim"].default)
        rebuilt = rebuild_policy(engine, spec, config.arms, dim)
        summary = rebuilt.summary()
        live = {arm.model: arm.updates for arm in state.arms}
        assert live == {arm: int(s["updates"]) for arm, s in summary.items()}
        assert state.updates == sum(live.values())
        with psycopg.connect(libpq_url(db_url)) as conn:
            snapshots = conn.execute(
                "SELECT last_event_id, state FROM policy_snapshots "
                "WHERE policy_name = %s AND policy_version = %s ORDER BY last_event_id",
                (name, version),
            ).fetchall()
        for last_event_id, data in snapshots:
            at = rebuild_policy(engine, spec, config.arms, dim, upto=int(last_event_id))
            assert policy_state.dumps(at) == bytes(data), f"snapshot at {last_event_id} differs"
        return len(snapshots)
    finally:
        engine.dispose()


def test_sigkill_mid_stream_loses_no_acknowledged_outcome(fresh_db_url: str) -> None:
    env = {"BANDITROUTE_SNAPSHOT_EVERY_EVENTS": str(SNAPSHOT_EVERY)}
    server = spawn_server(fresh_db_url, env=env, args=("--demo",))
    admin_md: Any = ()
    try:
        requests, stream, fired = stream_until_killed(
            server.address, server.pid, OUTCOMES, KILL_AFTER_ACKS
        )
    finally:
        server.kill()
    assert fired, "the server was never killed"
    acknowledged = stream.acknowledged
    assert KILL_AFTER_ACKS <= len(acknowledged) < OUTCOMES, "kill did not land mid-stream"
    # Every acknowledged outcome is durable, before any restart or recovery ran.
    _assert_acknowledged_are_stored(fresh_db_url, acknowledged)

    server = spawn_server(fresh_db_url, env=env)
    try:
        rest = [r for r in requests if r.decision_id not in acknowledged]
        retried = asyncio.run(retry_until_recorded(server.address, rest))
        assert len(retried) == len(rest)
        stored = _stored_outcomes(fresh_db_url)
        assert len(stored) == OUTCOMES
        _assert_acknowledged_are_stored(fresh_db_url, acknowledged)
        name, version = _default_policy(server.address, admin_md)
        state = _wait_caught_up(server.address, name, admin_md, fresh_db_url)
        assert state.updates == OUTCOMES
        compared = _assert_policy_equals_rebuild(fresh_db_url, name, version, state)
        assert compared >= 1, "no snapshot was written to compare byte for byte"
    finally:
        server.stop()


def test_sigkill_of_service_on_embedded_database_recovers_stale_server() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="banditroute-crash-", dir="/tmp"))
    env = {"BANDITROUTE_DATA_DIR": str(data_dir)}
    try:
        server = spawn_server("", env=env, args=("--demo",))
        try:
            requests, stream, fired = stream_until_killed(
                server.address, server.pid, 400, 150, batch_size=10
            )
        finally:
            server.kill()
        assert fired
        pid_file = data_dir / "postgres" / "postmaster.pid"
        assert pid_file.exists(), "embedded PostgreSQL should survive its owner's SIGKILL"

        resend_unacknowledged(env, requests, stream.acknowledged)
        # Read the result through a fresh handle on the same data dir.
        with EmbeddedPostgres(data_dir) as pg:
            _assert_acknowledged_are_stored(pg.url, stream.acknowledged)
            assert len(_stored_outcomes(pg.url)) == len(requests)
    finally:
        _stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def _stop_embedded(data_dir: Path) -> None:
    """Stop whatever PostgreSQL still runs in ``data_dir`` (a killed test must not leak it)."""
    if not (data_dir / "postgres" / "postmaster.pid").exists():
        return
    pg = EmbeddedPostgres(data_dir)
    try:
        pg.start()
    finally:
        pg.stop()
