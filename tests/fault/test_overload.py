"""Flooding the server past its in-flight cap: refusals are immediate RESOURCE_EXHAUSTED, not
timeouts; refused calls write nothing; health checks keep answering; the server recovers.

Counts, not timings: "fast" is shown by no call reaching its (generous) deadline and by every
refused call carrying the cap's RESOURCE_EXHAUSTED status.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from banditroute.service.config import libpq_url
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.fault.fuzzing import assert_serving
from tests.fault.workload import make_decisions
from tests.helpers import spawn_server

pytestmark = pytest.mark.fault

CAP = 4
FLOOD = 300
MAX_ROUNDS = 5


async def _flood(
    address: str, requests: list[router_pb2.RecordOutcomeRequest]
) -> tuple[list[grpc.StatusCode], list[int]]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def one(request: router_pb2.RecordOutcomeRequest) -> grpc.StatusCode:
            try:
                await stub.RecordOutcome(request, timeout=120)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        async def check_health() -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=120)
            return int(reply.status)

        calls = [one(r) for r in requests]
        checks = [check_health() for _ in range(10)]
        results = await asyncio.gather(*calls, *checks)
    return list(results[: len(requests)]), list(results[len(requests) :])


def test_flood_past_in_flight_cap_is_refused_fast_and_recovers(fresh_db_url: str) -> None:
    server = spawn_server(
        fresh_db_url, env={"BANDITROUTE_MAX_IN_FLIGHT": str(CAP)}, args=("--demo",)
    )
    try:
        codes: Counter[grpc.StatusCode] = Counter()
        refused: list[router_pb2.RecordOutcomeRequest] = []
        accepted: set[str] = set()
        for round_ in range(MAX_ROUNDS):
            decisions = asyncio.run(
                make_decisions(server.address, FLOOD, concurrency=CAP, prefix=f"flood {round_}")
            )
            batch = [router_pb2.RecordOutcomeRequest(decision_id=d, quality=0.5) for d in decisions]
            results, health = asyncio.run(_flood(server.address, batch))
            assert health == [health_pb2.HealthCheckResponse.SERVING] * len(health)
            codes.update(results)
            for request, code in zip(batch, results, strict=True):
                if code == grpc.StatusCode.OK:
                    accepted.add(request.decision_id)
                elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused.append(request)
            if codes[grpc.StatusCode.RESOURCE_EXHAUSTED]:
                break
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
        assert codes[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0, "the cap never engaged"
        assert codes[grpc.StatusCode.OK] >= CAP, "nothing got through the cap"

        with psycopg.connect(libpq_url(fresh_db_url)) as conn:
            stored = {str(r[0]) for r in conn.execute("SELECT decision_id FROM outcomes")}
        assert stored == accepted, "a refused call wrote, or an accepted one did not"

        # Recovery: the refused calls, retried one at a time, all succeed.
        with grpc.insecure_channel(server.address) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            for request in refused:
                reply = stub.RecordOutcome(request, timeout=60)
                assert not reply.duplicate
            assert_serving(channel)
    finally:
        server.stop()
