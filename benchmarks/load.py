"""Load benchmark of the gRPC service: Route throughput/latency against a no-op echo ceiling,
and durable outcome ingest through RecordOutcomes batches.

Run ``python benchmarks/load.py`` (options: ``--seconds``, ``--concurrency``,
``--database-url``); prints ONE flat JSON object and writes ``benchmarks/results/load.json``.

Method
------
* **Echo ceiling**: a grpc.aio server (same event loop, uvloop when available, same message
  types) whose ``Route`` returns a prebuilt ``RouteResponse`` without doing anything. It runs in
  its own process, exactly like the real server.
* **Floors** (``echo_commit_*``, ``echo_learners_*``; see :func:`_floor_server`): the echo
  server, except that each call is answered only after a row with its request committed to
  the same PostgreSQL, group-committed every ``write_flush_ms`` like Route's decisions; the
  second one also makes Route's three learner calls (features, cost estimates, the LinUCB
  choice) for the demo route. They split the gap between echo and Route into what the required
  durable write costs, what the learners cost, and what the service around them costs.
* **Route**: the real server (``banditroute serve --demo``) on PostgreSQL (a
private
  embedded PostgreSQL under /tmp, or a temporary database on the server ``--database-url``
  names, dropped afterwards), with 1 worker and then 2
  workers (``--workers 2``, SO_REUSEPORT), with the default settings: Route answers once the
  policy chose and its decision row is group-committed right after (``durable_decisions``
  off).
* **Client**: a separate process (multiprocessing, spawn) running a grpc.aio client that keeps
  ``--concurrency`` (32) unary calls in flight on ``--channels`` channels for ``--seconds`` after
  a warm-up; latencies are measured per call in the client. The same client code and settings
  measure echo and Route in the same run, so ``route_vs_echo`` compares like with like.
  For 2 workers the client opens one channel per in-flight slot group, so the kernel's
  SO_REUSEPORT balancing sees several connections.
  The client process runs with its garbage collector paused (``gc.disable`` after a
  collection), so its own GC pauses are not counted as server latency.
* **Outcome ingest**: the client first routes ``--outcome-decisions`` decisions, then sends
  their outcomes in ``RecordOutcomes`` batches of ``--batch`` items, 4 batches in flight;
  ``outcome_events_per_s`` counts outcomes acknowledged (each acknowledged outcome is committed
  to PostgreSQL before its batch is answered).

* **Server CPU per call** (``echo_server_cpu_us_per_call``, ``route_server_cpu_us_per_call``,
  ``..._2workers``): user + system CPU of the server process (all threads; with workers, all
  worker processes) during the measured window, divided by the calls answered. It moves less
  between runs than requests/s; ``benchmarks/instructions.py`` is the repeatable version.
  ``route_cpu_vs_echo`` is Route's over echo's, at ``--concurrency`` in flight.
* **Added latency** (``route_added_p50_ms_c1``): Route's p50 minus echo's p50 with ONE call in
  flight (``echo_p50_ms_c1``, ``route_p50_ms_c1``): what Route adds to each LLM call of an
  unloaded server. ``route_p50_ms_c1_fresh_request_id`` is the same Route with a new request id
  marked fresh, as ``banditroute.client`` sends every Route; ``..._reused_request_id`` with an
  id not marked fresh (a caller's own ids, a retry), which is looked up and waits for its
  commit. ``route_cpu_vs_echo_fresh_request_id`` (and ``route_rps_fresh_request_id``) is
  ``route_cpu_vs_echo`` for Routes as the client sends them.
* **Outcome latency** (``outcome_p50_ms_c1``, ``outcome_p99_ms_c1``): a RecordOutcome right
  after its Route, one call in flight on a quiet server; it is answered after its commit.

The machine is shared by server, client and PostgreSQL (2 cores here): numbers are for this
machine only and are what the README reports.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The project's packages (``learners``, ``service``, ``tests.helpers``) before this folder,
# whose ``learners.py`` would otherwise shadow the package.
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "load.json"
PROMPTS = [
    "Summarise the following support ticket in two sentences: the customer cannot log in.",
    "Write a Python function that merges two sorted lists.",
    "What is the capital of Australia?",
    "Translate 'good morning, how are you?' into French and Spanish.",
    "Explain the difference between TCP and UDP for a junior engineer.",
    "Prove that the square root of 2 is irrational.",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _install_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def _echo_reply() -> Any:
    """The prebuilt answer of the echo servers (shaped like a real Route answer)."""
    from banditroute.v1 import router_pb2

    return router_pb2.RouteResponse(
        decision_id="01900000-0000-7000-8000-000000000000",
        model="gpt-4o-mini",
        propensity=0.9,
        fallbacks=[router_pb2.RankedModel(model="gpt-4o", score=0.5, probability=0.1)],
        policy="default-linucb",
        policy_version=1,
        route="default",
    )


# -- echo server ---------------------------------------------------------------------------


def _echo_server(port: int, ready: Any) -> None:
    _install_uvloop()
    from banditroute.v1 import router_pb2_grpc

    reply = _echo_reply()

    class Echo(router_pb2_grpc.RouterServicer):
        async def Route(self, request: Any, context: Any) -> Any:
            return reply

    asyncio.run(_serve(Echo(), port, ready))


async def _serve(servicer: Any, port: int, ready: Any) -> None:
    """Serve ``servicer`` as the Router service on 127.0.0.1:``port`` until terminated."""
    import grpc.aio

    from banditroute.v1 import router_pb2_grpc

    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    ready.set()
    await server.wait_for_termination()


def _floor_server(port: int, ready: Any, db_url: str, flush_ms: float, learners: bool) -> None:
    """The echo server plus what the issue requires of every Route, and nothing else.

    Each call appends its serialized request to a group-commit queue and is answered after the
    batch committed: one multi-row ``INSERT`` in its own transaction per window of
    ``flush_ms`` (Route's ``write_flush_ms``), on one psycopg connection, on the same
    PostgreSQL as Route. With ``learners`` each call first does the three learner calls Route
    makes, configured as the demo route (features, output-token estimates of every candidate,
    the LinUCB choice with its propensity). No validation, no experiments, no decision row,
    no metrics: these servers are the ceilings the real server is compared with in
    ``route_vs_echo_commit`` and ``route_vs_echo_learners``.
    """
    _install_uvloop()
    import psycopg

    from banditroute.v1 import router_pb2_grpc

    reply = _echo_reply()
    pending: list[tuple[bytes, asyncio.Future[None]]] = []
    flushing: set[asyncio.Task[None]] = set()
    decide = _demo_learners() if learners else None

    async def main() -> None:
        conn = await psycopg.AsyncConnection.connect(
            db_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_echo_log (id bigserial PRIMARY KEY, request bytea)"
        )

        async def flush() -> None:
            await asyncio.sleep(flush_ms / 1000)
            batch = pending[:]
            pending.clear()
            values = ",".join(f"('\\x{raw.hex()}')" for raw, _ in batch)
            try:
                await conn.execute(
                    f"INSERT INTO bench_echo_log (request) VALUES {values}".encode(),
                    prepare=False,
                )
            except Exception as exc:
                for _, fut in batch:
                    fut.set_exception(exc)
                return
            for _, fut in batch:
                fut.set_result(None)

        class Floor(router_pb2_grpc.RouterServicer):
            async def Route(self, request: Any, context: Any) -> Any:
                if decide is not None:
                    decide(request.prompt)
                fut = asyncio.get_running_loop().create_future()
                pending.append((request.SerializeToString(), fut))
                if len(pending) == 1:
                    task = asyncio.ensure_future(flush())
                    flushing.add(task)
                    task.add_done_callback(flushing.discard)
                await fut
                return reply

        await _serve(Floor(), port, ready)

    asyncio.run(main())


def _demo_learners() -> Any:
    """``decide(prompt)``: Route's learner calls for the demo route (its defaults and models)."""
    import numpy as np

    from banditroute.learners import CostModel, FeatureExtractor, make_policy
    from banditroute.service.config import Settings
    from banditroute.service.core.demo import DEMO_MODELS

    dim = int(Settings.model_fields["feature_dim"].default)
    extractor, cost_model = FeatureExtractor(dim=dim), CostModel(dim=dim)
    names = [m[0] for m in DEMO_MODELS]
    policy = make_policy("linucb", names, dim, seed=0, alpha=1.0)
    rng = np.random.default_rng(0)
    for i in range(200):  # a policy that has learnt something, like the demo's after a while
        x = extractor.extract(PROMPTS[i % len(PROMPTS)])
        policy.update(x, names[i % len(names)], float(rng.random()))

    def decide(prompt: str) -> Any:
        x = extractor.extract(prompt)
        cost_model.predict_output_tokens_many(names, x)
        return policy.select(x, names, rng=rng)

    return decide


# -- client --------------------------------------------------------------------------------


def _client(
    address: str,
    seconds: float,
    concurrency: int,
    channels: int,
    warmup: float,
    server_pid: int,
    out: Any,
    request_ids: str = "",
) -> None:
    _install_uvloop()
    import grpc.aio

    from banditroute.v1 import router_pb2, router_pb2_grpc

    requests = [router_pb2.RouteRequest(prompt=p) for p in PROMPTS]
    # "fresh": a new request id per call, sent as the Python client's first attempt sends it;
    # "reused": a new id too, but not marked fresh (a caller's own ids, a retry).
    new_ids = iter(range(1 << 62)) if request_ids else None
    # The client's own garbage collector stops the client for milliseconds at a time; those
    # pauses would be counted as server latency (for echo and Route alike). The run is
    # bounded, so the client collects once, then runs without automatic collection.
    gc.collect()
    gc.freeze()
    gc.disable()

    async def main() -> dict[str, Any]:
        chans = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(channels)
        ]
        stubs = [router_pb2_grpc.RouterStub(c) for c in chans]
        latencies: list[float] = []
        errors = 0
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds
        done = 0

        async def worker(k: int) -> None:
            nonlocal errors, done
            stub = stubs[k % len(stubs)]
            i = k
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                request = requests[i % len(requests)]
                if new_ids is not None:
                    request = router_pb2.RouteRequest(
                        prompt=request.prompt,
                        request_id=f"{os.getpid()}-{next(new_ids)}",
                        fresh_request_id=request_ids == "fresh",
                    )
                try:
                    await stub.Route(request, timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
                    done += 1
                i += concurrency

        async def server_cpu() -> float:
            # The server's CPU seconds over exactly the measured window: read here, at
            # measure_from and at stop_at, not by the parent, whose window would also hold
            # this process's start-up and part of its warm-up.
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            cpu0 = _cpu_seconds(server_pid)
            await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
            return _cpu_seconds(server_pid) - cpu0

        cpu_task = asyncio.ensure_future(server_cpu()) if server_pid else None
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        server_cpu_s = await cpu_task if cpu_task is not None else 0.0
        for c in chans:
            await c.close()
        latencies.sort()
        n = len(latencies)
        return {
            "rps": n / seconds,
            "p50_ms": 1e3 * latencies[n // 2] if n else 0.0,
            "p99_ms": 1e3 * latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
            "mean_ms": 1e3 * statistics.fmean(latencies) if n else 0.0,
            "errors": errors,
            "calls": n,
            "server_cpu_s": server_cpu_s,
        }

    out.put(asyncio.run(main()))


def _outcome_client(address: str, decisions: int, batch: int, out: Any) -> None:
    _install_uvloop()
    import grpc.aio

    from banditroute.v1 import router_pb2, router_pb2_grpc

    async def main() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            ids: list[str] = []

            async def route(k: int) -> None:
                for i in range(k, decisions, 32):
                    r = await stub.Route(router_pb2.RouteRequest(prompt=PROMPTS[i % len(PROMPTS)]))
                    ids.append(r.decision_id)

            await asyncio.gather(*(route(k) for k in range(32)))
            batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]
            accepted = 0
            queue = list(batches)

            async def send() -> None:
                nonlocal accepted
                while queue:
                    chunk = queue.pop()
                    reply = await stub.RecordOutcomes(
                        router_pb2.RecordOutcomesRequest(
                            outcomes=[
                                router_pb2.RecordOutcomeRequest(
                                    decision_id=d,
                                    quality=(hash(d) % 100) / 100.0,
                                    input_tokens=120,
                                    output_tokens=300,
                                    latency_ms=800.0,
                                )
                                for d in chunk
                            ]
                        ),
                        timeout=60,
                    )
                    accepted += reply.accepted

            t0 = time.perf_counter()
            await asyncio.gather(*(send() for _ in range(4)))
            elapsed = time.perf_counter() - t0
            return {"events_per_s": accepted / elapsed, "accepted": accepted, "sent": len(ids)}

    out.put(asyncio.run(main()))


def _outcome_c1_client(address: str, calls: int, out: Any) -> None:
    """One call in flight: a Route, then its RecordOutcome (acknowledged after its commit);
    the outcome's p50 and p99 latency."""
    import grpc

    from banditroute.v1 import router_pb2, router_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        latencies = []
        for i in range(calls):
            reply = stub.Route(router_pb2.RouteRequest(prompt=PROMPTS[i % len(PROMPTS)]))
            started = time.perf_counter()
            stub.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=1.0)
            )
            latencies.append((time.perf_counter() - started) * 1e3)
            time.sleep(0.005)  # a quiet server: the next call comes later
    latencies.sort()
    out.put(
        {
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        }
    )


def _run_client(target: Any, *args: Any) -> dict[str, Any]:
    """Run ``target(*args, queue)`` in a client process and return what it puts on the queue."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result: dict[str, Any] = q.get(timeout=600)
    p.join(30)
    return result


def _measure(
    port: int,
    server_pid: int,
    args: argparse.Namespace,
    channels: int,
    concurrency: int | None = None,
    request_ids: str = "",
) -> dict[str, Any]:
    """Closed-loop Route load on ``port`` (see :func:`_client`; ``concurrency`` in flight,
    default ``--concurrency``), plus the server's CPU seconds (all its threads and worker
    processes) per call over the measured window (the client reads them when its window
    opens and closes)."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    in_flight = concurrency or args.concurrency
    address = f"127.0.0.1:{port}"
    client_args = (
        address, args.seconds, in_flight, channels, args.warmup, server_pid, q, request_ids
    )
    p = ctx.Process(target=_client, args=client_args)
    p.start()
    result: dict[str, Any] = q.get(timeout=600)
    if result["calls"]:
        result["server_cpu_us_per_call"] = result.pop("server_cpu_s") / result["calls"] * 1e6
    p.join(30)
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and of its descendants still running."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


# -- servers ---------------------------------------------------------------------------------


def _wait_health(address: str, proc: subprocess.Popen[Any], timeout: float = 120.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with grpc.insecure_channel(address) as ch:
                r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server not healthy")


def _start_server(
    db_url: str, port: int, workers: int, *, durable_decisions: bool = False
) -> subprocess.Popen[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDITROUTE_")}
    env.update(
        {
            "BANDITROUTE_DATABASE_URL": db_url,
            "BANDITROUTE_PORT": str(port),
            "BANDITROUTE_WORKERS": str(workers),
            "BANDITROUTE_METRICS_PORT": "0",
            "BANDITROUTE_LOG_LEVEL": "WARNING",
            "BANDITROUTE_MAX_IN_FLIGHT": "4096",
            "BANDITROUTE_DURABLE_DECISIONS": "true" if durable_decisions else "false",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "banditroute.service.cli", "serve", "--demo"],
        env=env,
        cwd=str(ROOT),
        start_new_session=True,
    )
    _wait_health(f"127.0.0.1:{port}", proc)
    return proc


def _stop(proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """SIGTERM ``proc``'s process group, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _default_flush_ms() -> float:
    """Route's group-commit window as the server started by :func:`_start_server` uses it."""
    from banditroute.service.config import Settings

    return float(Settings.model_fields["write_flush_ms"].default)


def _write_result(result: dict[str, Any], output: str) -> None:
    """Write ``result`` (floats to 3 decimals) to ``output`` as JSON and print it on one line."""
    result = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


def _server_options(parser: argparse.ArgumentParser, output: Path) -> None:
    """The options of the benchmarks that start a Route server (this one, instructions.py)."""
    parser.add_argument("--database-url", default=os.environ.get("BANDITROUTE_DATABASE_URL"))
    parser.add_argument("--output", default=str(output))
    parser.add_argument(
        "--durable-decisions",
        action="store_true",
        help="Route answers only after its decision committed (durable_decisions=true)",
    )


def main() -> None:
    from tests.helpers import migrated_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--outcome-decisions", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    _server_options(parser, RESULTS)
    args = parser.parse_args()

    result: dict[str, Any] = {
        "concurrency": args.concurrency,
        "durable_decisions": args.durable_decisions,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    ctx = multiprocessing.get_context("spawn")
    # 1. echo ceiling
    port = _free_port()
    ready = ctx.Event()
    echo = ctx.Process(target=_echo_server, args=(port, ready), daemon=True)
    echo.start()
    ready.wait(30)
    try:
        r = _measure(port, int(echo.pid or 0), args, args.channels)
        c1 = _measure(port, int(echo.pid or 0), args, 1, concurrency=1)
    finally:
        echo.terminate()
        echo.join(10)
    result.update(echo_p50_ms_c1=c1["p50_ms"], echo_p99_ms_c1=c1["p99_ms"])
    result.update(
        echo_rps=r["rps"],
        echo_p50_ms=r["p50_ms"],
        echo_p99_ms=r["p99_ms"],
        echo_server_cpu_us_per_call=r.get("server_cpu_us_per_call", 0.0),
    )

    with migrated_database(args.database_url, "br_load") as (db_url, _mode):
        # 2. the floors: echo + a durable row per call, then + Route's learner calls
        flush_ms = _default_flush_ms()  # the Route server below runs with the default
        for name, learners in (("echo_commit", False), ("echo_learners", True)):
            port = _free_port()
            ready = ctx.Event()
            floor = ctx.Process(
                target=_floor_server, args=(port, ready, db_url, flush_ms, learners), daemon=True
            )
            floor.start()
            ready.wait(60)
            try:
                r = _measure(port, int(floor.pid or 0), args, args.channels)
            finally:
                floor.terminate()
                floor.join(10)
            result.update(
                {
                    f"{name}_rps": r["rps"],
                    f"{name}_p50_ms": r["p50_ms"],
                    f"{name}_p99_ms": r["p99_ms"],
                    f"{name}_server_cpu_us_per_call": r.get("server_cpu_us_per_call", 0.0),
                }
            )
        # 3. Route, one worker
        port = _free_port()
        server = _start_server(db_url, port, 1, durable_decisions=args.durable_decisions)
        try:
            r = _measure(port, server.pid, args, args.channels)
            result.update(
                route_rps=r["rps"],
                route_p50_ms=r["p50_ms"],
                route_p99_ms=r["p99_ms"],
                route_errors=r["errors"],
                route_server_cpu_us_per_call=r.get("server_cpu_us_per_call", 0.0),
            )
            c1 = _measure(port, server.pid, args, 1, concurrency=1)
            result.update(route_p50_ms_c1=c1["p50_ms"], route_p99_ms_c1=c1["p99_ms"])
            for ids in ("fresh", "reused"):  # the Python client's Route; a caller's own ids
                c1 = _measure(port, server.pid, args, 1, concurrency=1, request_ids=ids)
                result[f"route_p50_ms_c1_{ids}_request_id"] = c1["p50_ms"]
            o = _run_client(_outcome_c1_client, f"127.0.0.1:{port}", 300)
            result.update(outcome_p50_ms_c1=o["p50_ms"], outcome_p99_ms_c1=o["p99_ms"])
            r = _measure(port, server.pid, args, args.channels, request_ids="fresh")
            result.update(
                route_rps_fresh_request_id=r["rps"],
                route_server_cpu_us_per_call_fresh_request_id=r.get("server_cpu_us_per_call", 0.0),
            )
            # 4. outcome ingest
            o = _run_client(
                _outcome_client, f"127.0.0.1:{port}", args.outcome_decisions, args.batch
            )
            result.update(
                outcome_events_per_s=o["events_per_s"],
                outcome_batch=args.batch,
                outcome_accepted=o["accepted"],
            )
        finally:
            _stop(server)
        # 5. Route, two workers on one port
        port = _free_port()
        server = _start_server(db_url, port, 2, durable_decisions=args.durable_decisions)
        try:
            r = _measure(port, server.pid, args, max(args.channels, 8))
            result.update(
                route_server_cpu_us_per_call_2workers=r.get("server_cpu_us_per_call", 0.0),
                route_rps_2workers=r["rps"],
                route_p50_ms_2workers=r["p50_ms"],
                route_p99_ms_2workers=r["p99_ms"],
            )
        finally:
            _stop(server)
    result["route_vs_echo"] = result["route_rps"] / result["echo_rps"]
    result["route_added_p50_ms_c1"] = result["route_p50_ms_c1"] - result["echo_p50_ms_c1"]
    result["route_cpu_vs_echo"] = (
        result["route_server_cpu_us_per_call"] / result["echo_server_cpu_us_per_call"]
    )
    result["route_cpu_vs_echo_fresh_request_id"] = (
        result["route_server_cpu_us_per_call_fresh_request_id"]
        / result["echo_server_cpu_us_per_call"]
    )
    result["route_vs_echo_2workers"] = result["route_rps_2workers"] / result["echo_rps"]
    result["echo_commit_vs_echo"] = result["echo_commit_rps"] / result["echo_rps"]
    result["echo_learners_vs_echo"] = result["echo_learners_rps"] / result["echo_rps"]
    result["route_vs_echo_commit"] = result["route_rps"] / result["echo_commit_rps"]
    result["route_vs_echo_learners"] = result["route_rps"] / result["echo_learners_rps"]
    _write_result(result, args.output)


if __name__ == "__main__":
    main()
