"""Worker scaling: echo and Route with 1, 2, 4 and 8 server workers.

Run ``python benchmarks/scale.py`` (options: ``--workers 1,2,4,8``, ``--seconds``,
``--concurrency``, ``--database-url``); prints ONE JSON object and writes
``benchmarks/results/scale_<cores>cores.json``.

Method
------
* **Echo**: N no-op grpc.aio echo processes on one port (``SO_REUSEPORT``, as ``serve
  --workers N``), the ceiling of N processes.
* **Route**: ``banditroute serve --demo --workers N`` on a private embedded PostgreSQL (or a
  temporary database on ``--database-url``'s server).
* **Writers** (``--targets writers``): N processes, each one ``GroupCommitWriter`` (default
  settings) writing decisions as fast as it can (512 in flight), no gRPC: the storage path of N
  workers alone, where a lock all writers queue on would show most clearly.
* **Client**: ``--clients`` processes of :func:`load._client` (32 in flight each, several
  channels so that the kernel spreads connections over the workers).
* **Pinning**: with at least 12 cores, the server gets 8 (or half the machine), the clients a
  quarter and PostgreSQL the rest (``os.sched_setaffinity`` on each process and its
  children); with fewer cores nothing is pinned and ``pinned`` is false.
* **Per run**: req/s, p50 and p99 (client side), server CPU per call, busy cores of the server,
  client and PostgreSQL groups (CPU seconds / wall seconds over the measured window), and for
  Route the wait events of PostgreSQL's sessions sampled every 10 ms
  (``pg_stat_activity.wait_event_type:wait_event``, counted): a lock every writer queues on
  shows up there as ``Lock:advisory`` (or ``Lock:transactionid``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # load.py, importable by the spawned clients too
import load  # noqa: E402

from tests.helpers import migrated_database  # noqa: E402


def _groups(cores: int) -> dict[str, set[int]] | None:
    """Cores of the server, client and PostgreSQL groups, or None when there are too few."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 12:
        return None
    server_n = min(8, len(available) // 2)
    client_n = max(2, (len(available) - server_n) // 2)
    return {
        "server": set(available[:server_n]),
        "client": set(available[server_n : server_n + client_n]),
        "postgres": set(available[server_n + client_n :]),
    }


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _pin(pid: int, cores: set[int] | None) -> None:
    if not cores:
        return
    for p in _tree(pid):
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                os.sched_setaffinity(int(task.name), cores)
        except OSError:
            continue


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu(pids: list[int]) -> float:
    return sum(load._cpu_seconds(p) for p in pids) if pids else 0.0


def _cpu_each(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process itself (not its children: PostgreSQL's are listed too)."""
    out = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _cpu_delta(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds used since ``before`` by the processes still running (ends exited ones)."""
    after = _cpu_each(pids)
    return sum(after[p] - before[p] for p in after if p in before)


class _WaitSampler(threading.Thread):
    """Counts ``wait_event_type:wait_event`` of the database's active sessions every 10 ms."""

    def __init__(self, db_url: str) -> None:
        super().__init__(daemon=True)
        self.db_url = db_url.replace("postgresql+psycopg://", "postgresql://")
        self.counts: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-'),"
                    " application_name FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND state = 'active'"
                ).fetchall()
                self.samples += 1
                for event, app in rows:
                    self.counts[f"{app or '?'} {event}"] += 1
                time.sleep(0.01)


def _run(
    target: str, workers: int, args: argparse.Namespace, db_url: str | None, groups: Any
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    port = load._free_port()
    procs: list[Any] = []
    if target == "echo":
        for _ in range(workers):
            ready = ctx.Event()
            proc = ctx.Process(target=_reuseport_echo, args=(port, ready), daemon=True)
            proc.start()
            ready.wait(30)
            procs.append(proc)
        server_pids = [int(p.pid) for p in procs]
    else:
        assert db_url is not None
        server = load._start_server(db_url, port, workers)
        server_pids = [server.pid]
    try:
        for pid in server_pids:
            _pin(pid, groups and groups["server"])
        pg = _postgres_pids()
        for pid in pg:
            _pin(pid, groups and groups["postgres"])
        queue = ctx.Queue()
        clients = []
        for _ in range(args.clients):
            client_args = (
                f"127.0.0.1:{port}",
                args.seconds,
                args.concurrency,
                max(4, 2 * workers),
                args.warmup,
                0,  # this script reads the CPU of every process group itself
                queue,
            )
            proc = ctx.Process(target=load._client, args=client_args)
            proc.start()
            clients.append(proc)
            _pin(int(proc.pid or 0), groups and groups["client"])
        time.sleep(args.warmup)
        sampler = _WaitSampler(db_url) if db_url and target == "route" else None
        if sampler is not None:
            sampler.start()
        t0 = time.perf_counter()
        server0 = _cpu(server_pids)
        client0 = _cpu([int(c.pid or 0) for c in clients])
        pg0 = _cpu_each(pg)
        results = [queue.get(timeout=600) for _ in clients]
        wall = time.perf_counter() - t0
        server_cpu = _cpu(server_pids) - server0
        client_cpu = _cpu([int(c.pid or 0) for c in clients]) - client0
        pg_cpu = _cpu_delta(pg0, pg)
        if sampler is not None:
            sampler.stop.set()
            sampler.join(5)
        for c in clients:
            c.join(30)
    finally:
        if target == "echo":
            for proc in procs:
                proc.terminate()
                proc.join(10)
        else:
            load._stop(server)
    calls = sum(r["calls"] for r in results)
    out: dict[str, Any] = {
        "workers": workers,
        "rps": sum(r["rps"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "server_cpu_us_per_call": server_cpu / calls * 1e6 if calls else 0.0,
        "server_cores_busy": server_cpu / wall,
        "client_cores_busy": client_cpu / wall,
        "postgres_cores_busy": pg_cpu / wall if db_url else 0.0,
    }
    if sampler is not None and sampler.samples:
        out["pg_wait_events_per_sample"] = {
            k: round(v / sampler.samples, 3) for k, v in sampler.counts.most_common(8)
        }
    return out


def _writer_process(db_url: str, seconds: float, warmup: float, out: Any) -> None:
    """One worker's decision writes, as fast as the writer commits them; puts the count."""
    import asyncio

    from banditroute.service.storage.writer import GroupCommitWriter
    from tests.helpers import decision_row

    async def main() -> dict[str, Any]:
        writer = GroupCommitWriter(db_url)
        await writer.start()
        pending: set[asyncio.Future[Any]] = set()
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + seconds
        done = 0
        try:
            while (now := time.perf_counter()) < stop_at:
                while len(pending) < 512:
                    pending.add(writer.submit_decision(decision_row()))
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if now >= measure_from:
                    done += len(finished)
        finally:
            await writer.close()
        return {"rps": done / seconds, "p50_ms": 0.0, "p99_ms": 0.0, "errors": 0, "calls": done}

    out.put(asyncio.run(main()))


def _run_writers(
    workers: int, args: argparse.Namespace, db_url: str, groups: Any
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_writer_process, args=(db_url, args.seconds, args.warmup, queue))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
        _pin(int(proc.pid or 0), groups and groups["server"])
    time.sleep(args.warmup)  # the writers have connected: their backends are listed
    pg = _postgres_pids()
    for pid in pg:
        _pin(pid, groups and groups["postgres"])
    sampler = _WaitSampler(db_url)
    sampler.start()
    t0 = time.perf_counter()
    pids = [int(p.pid or 0) for p in procs]
    cpu0, pg0 = _cpu(pids), _cpu_each(pg)
    cpu1, pg_cpu = cpu0, 0.0
    results = []
    wall = 0.0
    for _ in procs:
        results.append(queue.get(timeout=600))
        if len(results) == 1:  # the first writer stops: the window ends
            cpu1, pg_cpu = _cpu(pids), _cpu_delta(pg0, pg)
            wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join(5)
    for proc in procs:
        proc.join(30)
    calls = sum(r["calls"] for r in results)
    return {
        "workers": workers,
        "rps": sum(r["rps"] for r in results),
        "server_cpu_us_per_call": (cpu1 - cpu0) / calls * 1e6 if calls else 0.0,
        "server_cores_busy": (cpu1 - cpu0) / wall if wall else 0.0,
        "postgres_cores_busy": pg_cpu / wall if wall else 0.0,
        "pg_wait_events_per_sample": {
            k: round(v / max(1, sampler.samples), 3) for k, v in sampler.counts.most_common(8)
        },
    }


def _reuseport_echo(port: int, ready: Any) -> None:
    """The echo server of ``load.py``, bound with SO_REUSEPORT (grpc's default on Linux)."""
    load._echo_server(port, ready)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--targets", default="echo,route")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=0, help="client processes (0: by cores)")
    parser.add_argument("--database-url", default=os.environ.get("BANDITROUTE_DATABASE_URL"))
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    groups = _groups(cores)
    if not args.clients:
        args.clients = max(1, len(groups["client"]) if groups else 1)
    workers = [int(w) for w in args.workers.split(",")]
    targets = args.targets.split(",")
    result: dict[str, Any] = {
        "cores": cores,
        "pinned": groups is not None,
        "groups": {k: sorted(v) for k, v in groups.items()} if groups else None,
        "clients": args.clients,
        "concurrency_per_client": args.concurrency,
        "seconds": args.seconds,
    }
    with contextlib.ExitStack() as stack:
        db_url = None
        if "route" in targets or "writers" in targets:
            db_url, _mode = stack.enter_context(migrated_database(args.database_url, "br_scale"))
        for target in targets:
            if target == "writers":
                assert db_url is not None
                runs = [_run_writers(n, args, db_url, groups) for n in workers]
            else:
                runs = [_run(target, n, args, db_url, groups) for n in workers]
            base = runs[0]["rps"] or 1.0
            for r in runs:
                r["x_one_worker"] = r["rps"] / base
            result[target] = runs
    result = json.loads(json.dumps(result, default=float), parse_float=lambda s: round(float(s), 3))
    output = Path(args.output or ROOT / "benchmarks" / "results" / f"scale_{cores}cores.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
