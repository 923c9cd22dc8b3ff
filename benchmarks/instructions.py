"""Instructions per RPC of the Route server and of a no-op echo server (callgrind).

Run ``python benchmarks/instructions.py`` (needs ``valgrind``; options: ``--calls``,
``--concurrency``, ``--database-url``); prints ONE flat JSON object and writes
``benchmarks/results/instructions.json``.

Why: on this shared 2-core machine requests per second move by +-10% between identical runs,
which hides most single optimisations. Instructions executed by the server process per call
are repeatable to about 0.1% (callgrind counts them, whatever else the machine does), so this
is the measure to compare two versions of the server with, and to see how far Route is from
the echo ceiling of ``benchmarks/load.py`` (which is CPU-bound on the server process).

``--request-ids fresh`` gives each Route a new request id marked ``fresh_request_id``, as
``banditroute.client`` does; ``reused`` a new id not so marked (a caller's own ids, a retry).

Method: each server runs under ``valgrind --tool=callgrind --instr-atstart=no``; a client
(this process) warms it up with ``--warmup`` Routes, switches instrumentation on
(``callgrind_control -i on``), sends ``--calls`` Routes with ``--concurrency`` in flight, dumps
the counters and divides the instructions of all the server's threads by the calls. The Route
server is the real one (``banditroute serve --demo``, 1 worker, every Route
committed before its answer); the echo server is the one of ``benchmarks/load.py``. Under valgrind
the server is ~50x slower, so group-commit batches are smaller (``route_rows_per_batch``) than
under real load: the per-batch share of a Route is overstated here.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "instructions.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

from load import PROMPTS, _free_port, _server_options, _stop, _write_result  # noqa: E402

from tests.helpers import migrated_database  # noqa: E402


def _valgrind(out_dir: Path, argv: list[str], env: dict[str, str]) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p",
            sys.executable,
            *argv,
        ],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _drive(
    port: int, pid: int, warmup: int, calls: int, concurrency: int, request_ids: str = "none"
) -> float:
    import grpc.aio

    from banditroute.v1 import router_pb2, router_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        deadline = time.monotonic() + 600
        while True:  # valgrind start-up takes a while
            try:
                await stub.Route(router_pb2.RouteRequest(prompt="hello"), timeout=10)
                break
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)

        async def run(n: int) -> None:
            async def worker(k: int) -> None:
                for i in range(k, n, concurrency):
                    request = router_pb2.RouteRequest(prompt=PROMPTS[i % len(PROMPTS)])
                    if request_ids != "none":  # as banditroute.client sends it, or reused
                        request.request_id = uuid.uuid4().hex
                        request.fresh_request_id = request_ids == "fresh"
                    await stub.Route(request, timeout=300)

            await asyncio.gather(*(worker(k) for k in range(concurrency)))

        await run(warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)
        started = time.monotonic()
        await run(calls)
        elapsed = time.monotonic() - started
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        return elapsed


def _instructions(out_dir: Path) -> int:
    total = 0
    for name in glob.glob(f"{out_dir}/callgrind.out.*"):
        with open(name) as f:
            for line in f:
                if line.startswith("summary:"):
                    total += int(line.split()[1])
    return total


def _batch_rows(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("banditroute_write_batch_rows_")
    }
    count = values.get("banditroute_write_batch_rows_count", 0.0)
    return values.get("banditroute_write_batch_rows_sum", 0.0) / count if count else 0.0


def measure(kind: str, db_url: str, args: argparse.Namespace) -> dict[str, float]:
    """Instructions per call of one server (``echo`` or ``route``)."""
    out_dir = Path(tempfile.mkdtemp(prefix="banditroute-callgrind-", dir="/tmp"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDITROUTE_")}
    metrics_port = _free_port()
    if kind == "echo":
        code = (
            "import sys; sys.path.insert(0, 'benchmarks'); import load; "
            f"load._echo_server({port}, type('Ready', (), {{'set': lambda self: None}})())"
        )
        proc = _valgrind(out_dir, ["-c", code], env)
    else:
        env.update(
            BANDITROUTE_DATABASE_URL=db_url,
            BANDITROUTE_PORT=str(port),
            BANDITROUTE_WORKERS="1",
            BANDITROUTE_METRICS_PORT=str(metrics_port),
            BANDITROUTE_LOG_LEVEL="WARNING",
            BANDITROUTE_DURABLE_DECISIONS="true" if args.durable_decisions else "false",
        )
        proc = _valgrind(out_dir, ["-m", "banditroute.service.cli", "serve", "--demo"], env)
    try:
        ids = args.request_ids if kind == "route" else "none"
        elapsed = asyncio.run(
            _drive(port, proc.pid, args.warmup, args.calls, args.concurrency, ids)
        )
        time.sleep(1.0)  # the dump is written asynchronously
        result = {
            f"{kind}_instructions_per_call": _instructions(out_dir) / args.calls,
            f"{kind}_calls_per_s_under_valgrind": args.calls / elapsed,
        }
        if kind == "route":
            result["route_rows_per_batch"] = _batch_rows(metrics_port)
        return result
    finally:
        _stop(proc, timeout=120)  # valgrind exits slowly
        shutil.rmtree(out_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--request-ids",
        choices=["none", "fresh", "reused"],
        default="none",
        help="Routes without a request id; with a new one marked fresh (as banditroute.client "
        "sends them); with a new one not marked (a caller's own ids)",
    )
    _server_options(parser, RESULTS)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    result: dict[str, Any] = {
        "calls": args.calls,
        "concurrency": args.concurrency,
        "durable_decisions": args.durable_decisions,
        "request_ids": args.request_ids,
    }
    result.update(measure("echo", "", args))
    with migrated_database(args.database_url, "br_instructions") as (db_url, _mode):
        result.update(measure("route", db_url, args))
    result["route_vs_echo_instructions"] = (
        result["echo_instructions_per_call"] / result["route_instructions_per_call"]
    )
    _write_result(result, args.output)


if __name__ == "__main__":
    main()
