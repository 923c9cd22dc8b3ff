"""Demo: an A/B experiment between LinUCB and Thompson sampling on real routing data.

Drives simulated traffic from the RouterBench subset (``/work/shared/data``, read-only)
through the real gRPC API: each request is ``Route`` (with a sticky ``unit_id`` per simulated
user), then ``RecordOutcome`` with the chosen model's recorded correctness and cost from the
dataset. Then it prints the experiment's status table (``banditroute experiments status``).

Usage::

    python scripts/demo_experiment.py                       # starts its own server
    python scripts/demo_experiment.py --address 127.0.0.1:50051 --admin-token "$TOKEN"

Without ``--address`` it starts a server (``banditroute serve``) on a free port,
with an embedded PostgreSQL in a temporary directory (or ``--database-url``), and stops it at the
end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from banditroute.service.experiments.formatting import format_status
from banditroute.service.replay.loaders import load_routerbench
from banditroute.service.replay.prices import estimate_tokens
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc

DATA = Path(os.environ.get("BANDITROUTE_DATA", "/work/shared/data")) / "routerbench-subset"
ROUTE = "routerbench-demo"
#: The experiment's variants: (variant, its policy, algorithm, hyperparameters, Variant fields).
#: The first is the control and the route's own policy.
VARIANTS = [
    ("linucb", "demo-linucb", "linucb", {"alpha": 1.0}, {"weight": 50, "control": True}),
    ("thompson", "demo-thompson", "thompson", {}, {"weight": 50}),
    ("eps-shadow", "demo-epsilon", "epsilon_greedy", {"epsilon": 0.1}, {"shadow": True}),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(
    token: str, database_url: str | None
) -> tuple[subprocess.Popen[bytes], str, Path]:
    data_dir = Path(tempfile.mkdtemp(prefix="banditroute-demo-", dir="/tmp"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDITROUTE_")}
    env.update(
        {
            "BANDITROUTE_ADMIN_TOKEN": token,
            "BANDITROUTE_HOST": "127.0.0.1",
            "BANDITROUTE_PORT": str(port),
            "BANDITROUTE_METRICS_PORT": "0",
            "BANDITROUTE_DATA_DIR": str(data_dir / "pg"),
        }
    )
    if database_url:
        env["BANDITROUTE_DATABASE_URL"] = database_url
    cmd = [sys.executable, "-m", "banditroute.service.cli", "serve"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise SystemExit(f"server exited early:\n{err[-2000:]}")
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("server did not become healthy in 120 s")
            time.sleep(0.2)
    return proc, address, data_dir


def _setup(
    admin: admin_pb2_grpc.AdminStub,
    md: list[tuple[str, str]],
    ds: object,
    experiment: str,
    cost_weight: float,
) -> None:
    models: list[str] = ds.models  # type: ignore[attr-defined]
    cost = ds.mean_cost()  # type: ignore[attr-defined]
    tokens = float(np.mean([estimate_tokens(p) for p in ds.prompts])) + 50  # type: ignore[attr-defined]
    for m, c in zip(models, cost, strict=True):
        price = float(c) / tokens * 1e6  # USD per 1M tokens, so estimates match the data
        admin.PutModel(
            admin_pb2.PutModelRequest(
                model=admin_pb2.Model(
                    id=m,
                    provider=m.split("/")[0],
                    input_usd_per_mtok=price,
                    output_usd_per_mtok=price,
                    enabled=True,
                )
            ),
            metadata=md,
        )
    reward = admin_pb2.RewardWeights(cost_weight=cost_weight)
    for _, name, algorithm, hp, _ in VARIANTS:
        s = struct_pb2.Struct()
        s.update(hp)
        admin.PutPolicy(
            admin_pb2.PutPolicyRequest(
                name=name, algorithm=algorithm, hyperparameters=s, reward=reward, seed=7
            ),
            metadata=md,
        )
    admin.PutRoute(
        admin_pb2.PutRouteRequest(
            route=admin_pb2.RouteConfig(name=ROUTE, policy=VARIANTS[0][1], models=models)
        ),
        metadata=md,
    )
    admin.CreateExperiment(
        admin_pb2.CreateExperimentRequest(
            name=experiment,
            route=ROUTE,
            variants=[
                admin_pb2.Variant(name=variant, policy=policy, **fields)
                for variant, policy, _, _, fields in VARIANTS
            ],
            guardrail=admin_pb2.Guardrail(max_reward_drop=0.1, confidence=0.95, min_samples=200),
            start=True,
            actor="demo",
        ),
        metadata=md,
    )


async def _traffic(
    address: str, ds: object, n: int, users: int, seed: int, concurrency: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, ds.n, size=n)  # type: ignore[attr-defined]
    units = rng.integers(0, users, size=n)
    index = {m: i for i, m in enumerate(ds.models)}  # type: ignore[attr-defined]
    # RouterBench records no latency: draw one per call around a per-model median.
    median_ms = {m: 300.0 + 150.0 * (i % 5) for m, i in index.items()}
    lat_rng = np.random.default_rng(seed + 1)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    done = {"routed": 0.0, "quality": 0.0, "cost": 0.0}
    async with grpc.aio.insecure_channel(address) as ch:
        stub = router_pb2_grpc.RouterStub(ch)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                row = int(rows[i])
                resp = await stub.Route(
                    router_pb2.RouteRequest(
                        prompt=ds.prompts[row],  # type: ignore[attr-defined]
                        route=ROUTE,
                        unit_id=f"user-{units[i]}",
                    )
                )
                k = index[resp.model]
                quality = float(ds.quality[row, k])  # type: ignore[attr-defined]
                cost = float(ds.cost[row, k])  # type: ignore[attr-defined]
                latency = float(median_ms[resp.model] * lat_rng.lognormal(0.0, 0.3))
                await stub.RecordOutcome(
                    router_pb2.RecordOutcomeRequest(
                        decision_id=resp.decision_id,
                        quality=quality,
                        cost_usd=cost,
                        latency_ms=latency,
                    )
                )
                done["routed"] += 1
                done["quality"] += quality
                done["cost"] += cost

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", help="A running server (default: start one).")
    ap.add_argument(
        "--database-url",
        help="PostgreSQL for the server this script starts (default: embedded, in /tmp).",
    )
    ap.add_argument("--admin-token", default=os.environ.get("BANDITROUTE_ADMIN_TOKEN", ""))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--users", type=int, default=500, help="Distinct sticky unit ids.")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--cost-weight", type=float, default=20.0, help="Reward = quality - cost_weight * cost_usd."
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="Print the status as JSON.")
    args = ap.parse_args(argv)

    ds = load_routerbench(DATA, split="test")
    proc = None
    data_dir = None
    token = args.admin_token
    address = args.address
    if address is None:
        token = token or secrets.token_urlsafe(16)
        proc, address, data_dir = _start_server(token, args.database_url)
    md = [("authorization", f"Bearer {token}")] if token else []
    # A fixed name (the bucketing salt) on our own fresh server; unique on a shared one.
    experiment = "linucb-vs-thompson"
    if args.address is not None:
        experiment += f"-{secrets.token_hex(3)}"
    try:
        with grpc.insecure_channel(address) as ch:
            admin = admin_pb2_grpc.AdminStub(ch)
            _setup(admin, md, ds, experiment, args.cost_weight)
            t0 = time.perf_counter()
            done = asyncio.run(
                _traffic(address, ds, args.requests, args.users, args.seed, args.concurrency)
            )
            elapsed = time.perf_counter() - t0
            # Learning and statistics follow the event log; give it a moment to catch up.
            time.sleep(1.0)
            status = admin.GetExperimentStatus(
                admin_pb2.GetExperimentStatusRequest(name=experiment), metadata=md
            )
        if args.json:
            from banditroute.service.experiments.formatting import message_json

            print(message_json(status))
        else:
            print(
                f"{int(done['routed'])} requests (Route + RecordOutcome) in {elapsed:.1f} s "
                f"from {args.users} users; accuracy {done['quality'] / done['routed']:.3f}, "
                f"${done['cost'] / done['routed']:.5f} per query\n"
            )
            print(format_status(status))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
