"""How long ``banditroute serve --demo`` takes to answer health checks; prints one JSON object.

The first start creates and migrates the embedded PostgreSQL in a fresh data directory; the
restarts reuse it (adopting nothing: each run is stopped with SIGTERM first). Ready = from
exec to the standard health check answering SERVING, polled with a new channel per try (a
channel's reconnect backoff would add seconds).

Usage: ``python benchmarks/restart.py [--restarts 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import free_port


def _start(data_dir: str, log: object) -> tuple[float, float]:
    """Seconds to SERVING and to stop after SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANDITROUTE_", "XDG_"))}
    command = [shutil.which("banditroute") or "banditroute", "serve", "--demo", "--data-dir",
               data_dir, "--port", str(port), "--metrics-port", "0"]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,  # type: ignore[arg-type]
                            start_new_session=True)
    while True:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
        except grpc.RpcError:
            time.sleep(0.02)
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
    ready = time.perf_counter() - start
    stopping = time.perf_counter()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)
    return ready, time.perf_counter() - stopping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=5)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="br-restart-", dir="/tmp")
    try:
        with open(data_dir + ".log", "w", encoding="utf-8") as log:
            first = _start(data_dir, log)
            runs = [_start(data_dir, log) for _ in range(args.restarts)]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    ready = sorted(r for r, _ in runs)
    print(json.dumps({
        "benchmark": "restart", "first_start_s": round(first[0], 2),
        "restart_ready_s": [round(r, 2) for r, _ in runs],
        "restart_median_s": round(ready[len(ready) // 2], 2),
        "stop_s_max": round(max(s for _, s in runs), 2), "load_avg": os.getloadavg()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
