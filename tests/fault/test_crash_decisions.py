"""kill -9 right after a burst of Routes, decisions logged off the request path (the default):
the decisions lost are at most the last unsettled window (never more than
``write_batch_max_rows``, all of them answered in the last moments before the kill), and no
acknowledged outcome is lost. A third of the Routes carry a fresh request id, as
``banditroute.client`` sends them: a request id is claimed if and only if its decision is
stored (both commit in one transaction).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.fault.workload import make_decisions, outcome_for
from tests.helpers import spawn_server

pytestmark = pytest.mark.fault

BATCH_MAX_ROWS = 50
BURST = 1500
IN_FLIGHT = 64
#: Every decision answered this long before the kill must be stored (a commit takes ms).
SETTLED_AFTER_S = 2.0


async def _acknowledged_outcomes(address: str, decisions: list[str]) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        reply = await stub.RecordOutcomes(
            router_pb2.RecordOutcomesRequest(
                outcomes=[outcome_for(d, i) for i, d in enumerate(decisions)]
            ),
            timeout=60,
        )
    return [r.decision_id for r in reply.results if r.code == 0]


async def _burst(address: str) -> list[tuple[str, float]]:
    """Route ``BURST`` prompts, ``IN_FLIGHT`` at a time; (decision id, answer time) each."""
    answered: list[tuple[str, float]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        todo = iter(range(BURST))

        async def worker() -> None:
            for i in todo:
                request = router_pb2.RouteRequest(prompt=f"burst prompt {i} on topic {i % 13}")
                if i % 3 == 0:
                    request.request_id, request.fresh_request_id = f"burst-{i}", True
                reply = await stub.Route(request, timeout=60)
                answered.append((reply.decision_id, time.monotonic()))

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return answered


def _stored(db_url: str, table: str, ids: list[str]) -> set[str]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        rows = conn.execute(
            f"SELECT decision_id FROM {table} WHERE decision_id = ANY(%s)",
            ([uuid.UUID(d) for d in ids],),
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_sigkill_after_route_burst_loses_at_most_one_window(fresh_db_url: str) -> None:
    env = {"BANDITROUTE_WRITE_BATCH_MAX_ROWS": str(BATCH_MAX_ROWS)}
    server = spawn_server(fresh_db_url, env=env, args=("--demo",))
    try:
        earlier = asyncio.run(make_decisions(server.address, 200))
        acknowledged = asyncio.run(_acknowledged_outcomes(server.address, earlier))
        answered = asyncio.run(_burst(server.address))
    finally:
        server.kill()
    killed_at = time.monotonic()
    assert len(acknowledged) == len(earlier)
    assert _stored(fresh_db_url, "outcomes", acknowledged) == set(acknowledged)

    ids = [d for d, _ in answered]
    stored = _stored(fresh_db_url, "decisions", ids)
    lost = [(d, t) for d, t in answered if d not in stored]
    assert len(lost) <= BATCH_MAX_ROWS, f"{len(lost)} decisions lost"
    late = [d for d, t in lost if killed_at - t > SETTLED_AFTER_S]
    assert late == [], f"{len(late)} decisions answered long before the kill were lost"
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        keyed = conn.execute(
            "SELECT count(*) FROM decisions WHERE request_id LIKE 'burst-%'"
        ).fetchone()
        claims = conn.execute(
            "SELECT count(*), count(d.decision_id) FROM request_ids r "
            "LEFT JOIN decisions d ON d.decision_id = r.decision_id "
            "WHERE r.request_id LIKE 'burst-%'"
        ).fetchone()
    assert keyed is not None and claims is not None
    assert keyed[0] > BURST // 3 - BATCH_MAX_ROWS
    assert claims == (keyed[0], keyed[0])  # one claim per stored keyed decision, none orphaned
