"""Benchmark of the group-commit writer alone (no gRPC): durable events per second.

Run ``python benchmarks/writer.py`` (options: ``--database-url``, ``--events``, ``--batch``,
``--concurrency``); prints ONE flat JSON object and writes ``benchmarks/results/writer.json``.

Method: a fresh database (a private embedded PostgreSQL under /tmp unless ``--database-url``
names a server, on which a temporary database is created and dropped) is migrated; one
``GroupCommitWriter`` with the default settings (flush every 4 ms, at most 1000 rows per
transaction) then writes ``--events`` decisions and

* ``outcome_events_per_s``: their outcomes as ``write_outcomes`` calls of ``--batch`` rows,
  ``--concurrency`` calls in flight (what the RecordOutcomes RPC does);
* ``single_outcome_events_per_s``: outcomes of other decisions through one ``write_outcome`` call
  per event, ``--concurrency`` x ``--batch`` calls in flight (unary RecordOutcome);
* ``decision_events_per_s``: the decisions themselves, ``--concurrency`` x ``--batch`` in flight.

Every counted event was acknowledged, i.e. committed (``synchronous_commit`` as configured on
the server: on by default). The count of rows in the database is checked against the count of
acknowledgements.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banditroute.service.storage.writer import GroupCommitWriter, WriterLimits  # noqa: E402
from tests.helpers import (  # noqa: E402
    decision_row,
    migrated_database,
    outcome_row,
    write_benchmark_result,
)


async def _measure(url: str, events: int, batch: int, concurrency: int) -> dict[str, Any]:
    decisions = [decision_row() for _ in range(2 * events)]
    first, second = decisions[:events], decisions[events:]
    in_flight = asyncio.Semaphore(concurrency * batch)

    async def one(call: Any) -> Any:
        async with in_flight:
            return await call

    limits = WriterLimits(max_pending_rows=10 * concurrency * batch)
    async with GroupCommitWriter(url, limits) as writer:
        started = time.perf_counter()
        await asyncio.gather(*(one(writer.write_decision(d)) for d in decisions))
        decision_s = time.perf_counter() - started

        batches = [first[i : i + batch] for i in range(0, events, batch)]
        calls = asyncio.Semaphore(concurrency)

        async def send(rows: list[dict[str, Any]]) -> list[Any]:
            async with calls:
                return await writer.write_outcomes([outcome_row(d) for d in rows])

        started = time.perf_counter()
        results = [r for chunk in await asyncio.gather(*map(send, batches)) for r in chunk]
        batch_s = time.perf_counter() - started
        assert all(r.ok for r in results)

        started = time.perf_counter()
        singles = await asyncio.gather(*(one(writer.write_outcome(outcome_row(d))) for d in second))
        single_s = time.perf_counter() - started
        assert all(r.ok for r in singles)
    return {
        "outcome_events_per_s": round(events / batch_s),
        "single_outcome_events_per_s": round(events / single_s),
        "decision_events_per_s": round(2 * events / decision_s),
    }


def _count(url: str, table: str) -> int:
    import psycopg

    from banditroute.service.config import libpq_url

    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="server to create a temporary database on")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    with migrated_database(args.database_url or None, "br_bench") as (url, mode):
        result = asyncio.run(_measure(url, args.events, args.batch, args.concurrency))
        assert _count(url, "outcomes") == 2 * args.events
        assert _count(url, "decisions") == 2 * args.events
        output = {
            **result,
            "events": args.events,
            "batch": args.batch,
            "concurrency": args.concurrency,
        }
        write_benchmark_result("writer", output, url, mode)


if __name__ == "__main__":
    main()
