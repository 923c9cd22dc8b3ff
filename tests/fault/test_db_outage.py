"""PostgreSQL stops for several seconds under load (a dedicated embedded instance under /tmp,
stopped with pg_ctl; never the shared server).

During the outage Route keeps answering from the in-memory policies, decisions wait in the
bounded outage buffer (beyond its capacity they are answered but dropped), and every write RPC
answers UNAVAILABLE, never success. When PostgreSQL is back the service reconnects by itself,
writes the buffered decisions (``logged = false``) and accepts writes again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import grpc
import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.fault.dedicated_pg import DedicatedPostgres
from tests.fault.fuzzing import assert_serving
from tests.helpers import spawn_server

pytestmark = pytest.mark.fault

BUFFER = 120
DURING_OUTAGE = 200
OUTAGE_WRITES = 30
#: Bounded wait for the reconnection (polls with a pause; a count, not a timing assertion).
RECOVERY_POLLS = 600
POLL_PAUSE_S = 0.1


@pytest.fixture
def dedicated_pg() -> Iterator[DedicatedPostgres]:
    pg = DedicatedPostgres()
    try:
        yield pg
    finally:
        pg.close()


def _route(stub: router_pb2_grpc.RouterStub, prompt: str) -> router_pb2.RouteResponse:
    reply: router_pb2.RouteResponse = stub.Route(router_pb2.RouteRequest(prompt=prompt), timeout=60)
    return reply


def _code_of(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _retry(call: object) -> tuple[grpc.StatusCode, int]:
    """Call until something other than UNAVAILABLE comes back; (code, attempts)."""
    for attempt in range(1, RECOVERY_POLLS + 1):
        code = _code_of(call)
        if code != grpc.StatusCode.UNAVAILABLE:
            return code, attempt
        time.sleep(POLL_PAUSE_S)
    return grpc.StatusCode.UNAVAILABLE, RECOVERY_POLLS


def test_outage_route_keeps_answering_writes_unavailable_then_resume(
    dedicated_pg: DedicatedPostgres,
) -> None:
    server = spawn_server(
        dedicated_pg.url,
        env={"BANDITROUTE_OUTAGE_BUFFER_DECISIONS": str(BUFFER)},
        args=("--demo",),
    )
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            before = [_route(stub, f"before outage {i}").decision_id for i in range(20)]
            for did in before[:10]:
                stub.RecordOutcome(router_pb2.RecordOutcomeRequest(decision_id=did, quality=1.0))

            dedicated_pg.stop_server()

            # Route keeps answering: every call succeeds, from memory.
            during = [_route(stub, f"during outage {i}") for i in range(DURING_OUTAGE)]
            assert all(r.decision_id and r.model for r in during)
            # Writes say UNAVAILABLE (retry), never OK and never another code.
            codes: Counter[grpc.StatusCode] = Counter()
            for i in range(OUTAGE_WRITES):
                did = before[10 + i % 10]
                outcome = router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.5)
                feedback = router_pb2.SubmitFeedbackRequest(decision_id=did, rating=1.0)
                codes[_code_of(lambda o=outcome: stub.RecordOutcome(o, timeout=60))] += 1
                codes[_code_of(lambda f=feedback: stub.SubmitFeedback(f, timeout=60))] += 1
                batch = router_pb2.RecordOutcomesRequest(
                    outcomes=[router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.5)]
                )
                codes[_code_of(lambda batch=batch: stub.RecordOutcomes(batch, timeout=60))] += 1
            assert codes == Counter({grpc.StatusCode.UNAVAILABLE: 3 * OUTAGE_WRITES})
            # An outcome for a decision still in the outage buffer is UNAVAILABLE, not NOT_FOUND.
            held = during[0].decision_id
            code = _code_of(
                lambda: stub.RecordOutcome(
                    router_pb2.RecordOutcomeRequest(decision_id=held, quality=0.5), timeout=60
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE
            assert_serving(channel)

            dedicated_pg.start_server()

            # Writes resume by themselves (the client only retries UNAVAILABLE).
            for did in before[10:]:
                code, _ = _retry(
                    lambda did=did: stub.RecordOutcome(
                        router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.5),
                        timeout=60,
                    )
                )
                assert code == grpc.StatusCode.OK
            # Buffered decisions reach the log; the ones beyond the buffer were dropped.
            for reply in during[:BUFFER]:
                code, _ = _retry(
                    lambda reply=reply: stub.RecordOutcome(
                        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=1),
                        timeout=60,
                    )
                )
                assert code == grpc.StatusCode.OK
            for reply in during[BUFFER:]:
                code, _ = _retry(
                    lambda reply=reply: stub.RecordOutcome(
                        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=1),
                        timeout=60,
                    )
                )
                assert code == grpc.StatusCode.NOT_FOUND
            # And Route is back to logging its decisions: an outcome right after it is accepted.
            after = _route(stub, "after outage")
            stub.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=after.decision_id, quality=1),
                timeout=60,
            )

        with psycopg.connect(libpq_url(dedicated_pg.url)) as conn:
            late = {
                str(r[0])
                for r in conn.execute("SELECT decision_id FROM decisions WHERE NOT logged")
            }
            stored = {str(r[0]) for r in conn.execute("SELECT decision_id FROM decisions")}
            outcomes = conn.execute("SELECT count(*) FROM outcomes").fetchone()
        assert late == {r.decision_id for r in during[:BUFFER]}
        assert not stored & {r.decision_id for r in during[BUFFER:]}
        assert set(before) | {after.decision_id} <= stored
        assert outcomes is not None and outcomes[0] == 20 + BUFFER + 1
    finally:
        server.stop()
