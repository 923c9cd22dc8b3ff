"""Route logs its decision off the request path (the default) or before answering (durable mode).

An outcome or feedback sent right after Route, to the same process or to another one on the
same database, is accepted even when the decision has not committed yet; the durable mode
answers Route only after its decision committed, as before.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.service.storage.ids import new_decision_id
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, register_demo

#: A group-commit window long enough that a decision surely has not committed when the next
#: call arrives.
SLOW_FLUSH_MS = 300.0


def _stored(db_url: str, decision_id: str) -> bool:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute(
            "SELECT 1 FROM decisions WHERE decision_id = %s", (uuid.UUID(decision_id),)
        ).fetchone()
    return row is not None


def _wait_stored(db_url: str, decision_id: str) -> None:
    deadline = time.monotonic() + 10
    while not _stored(db_url, decision_id):
        assert time.monotonic() < deadline, "the decision never committed"
        time.sleep(0.02)


def _stub(server: InProcessServer) -> tuple[grpc.Channel, router_pb2_grpc.RouterStub]:
    channel = grpc.insecure_channel(server.address)
    return channel, router_pb2_grpc.RouterStub(channel)


@contextlib.contextmanager
def _servers(db_url: str, flush_ms: float) -> Iterator[tuple[InProcessServer, InProcessServer]]:
    register_demo(db_url)
    first = InProcessServer(db_url, write_flush_ms=flush_ms)
    try:
        second = InProcessServer(db_url)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.fixture
def two_servers(fresh_db_url: str) -> Iterator[tuple[InProcessServer, InProcessServer]]:
    """Two processes' worth of server on one database; the first commits decisions slowly."""
    with _servers(fresh_db_url, SLOW_FLUSH_MS) as servers:
        yield servers


def test_route_answers_before_its_decision_commits(
    two_servers: tuple[InProcessServer, ...],
) -> None:
    first, _ = two_servers
    channel, stub = _stub(first)
    with channel:
        reply = stub.Route(router_pb2.RouteRequest(prompt="hello"), timeout=10)
        assert not _stored(first.db_url, reply.decision_id)
        _wait_stored(first.db_url, reply.decision_id)


def test_outcome_right_after_route_same_worker_is_accepted(
    two_servers: tuple[InProcessServer, ...],
) -> None:
    first, _ = two_servers
    channel, stub = _stub(first)
    with channel:
        for i in range(5):
            reply = stub.Route(router_pb2.RouteRequest(prompt=f"question {i}"), timeout=10)
            outcome = stub.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=0.5),
                timeout=10,
            )
            assert outcome.event_id > 0
            assert _stored(first.db_url, reply.decision_id)
            feedback = stub.SubmitFeedback(
                router_pb2.SubmitFeedbackRequest(decision_id=reply.decision_id, rating=1.0),
                timeout=10,
            )
            assert feedback.event_id > outcome.event_id


def test_outcome_right_after_route_other_worker_is_accepted(
    two_servers: tuple[InProcessServer, ...],
) -> None:
    first, second = two_servers
    channel1, stub1 = _stub(first)
    channel2, stub2 = _stub(second)
    with channel1, channel2:
        replies = [
            stub1.Route(router_pb2.RouteRequest(prompt=f"question {i}"), timeout=10)
            for i in range(5)
        ]
        batch = stub2.RecordOutcomes(
            router_pb2.RecordOutcomesRequest(
                outcomes=[
                    router_pb2.RecordOutcomeRequest(decision_id=r.decision_id, success=True)
                    for r in replies[:4]
                ]
            ),
            timeout=10,
        )
        assert batch.accepted == 4, [r.message for r in batch.results]
        feedback = stub2.SubmitFeedback(
            router_pb2.SubmitFeedbackRequest(decision_id=replies[4].decision_id, rating=1.0),
            timeout=10,
        )
        assert feedback.event_id > 0


def test_outcome_for_unknown_decision_is_not_found_without_waiting_when_old(
    two_servers: tuple[InProcessServer, ...],
) -> None:
    _, second = two_servers
    channel, stub = _stub(second)
    old = str(new_decision_id(datetime.now(UTC) - timedelta(hours=1)))
    with channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            stub.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=old, quality=0.5), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert time.monotonic() - started < 0.5
        # a young unknown id is looked up again for a while, then NOT_FOUND too
        young = str(new_decision_id(datetime.now(UTC)))
        with pytest.raises(grpc.RpcError) as err:
            stub.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=young, quality=0.5), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_durable_mode_answers_after_the_decision_committed(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url, durable_decisions=True, write_flush_ms=SLOW_FLUSH_MS)
    try:
        channel, stub = _stub(server)
        with channel:
            # an idle writer commits a decision somebody waits for at once
            reply = stub.Route(router_pb2.RouteRequest(prompt="hello"), timeout=10)
            assert _stored(fresh_db_url, reply.decision_id)
            # the next one, within the window after that commit, waits for the window
            started = time.monotonic()
            again = stub.Route(router_pb2.RouteRequest(prompt="hello again"), timeout=10)
            assert time.monotonic() - started >= SLOW_FLUSH_MS / 1000 * 0.5
            assert _stored(fresh_db_url, again.decision_id)
            assert server.app.outcomes.store.decision_wait_s == 0.0  # type: ignore[attr-defined]
    finally:
        server.stop()


def _decisions_of_request(db_url: str, request_id: str) -> list[str]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        rows = conn.execute(
            "SELECT decision_id FROM decisions WHERE request_id = %s", (request_id,)
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_fresh_request_id_is_answered_before_its_decision_commits(
    two_servers: tuple[InProcessServer, ...],
) -> None:
    first, _ = two_servers
    channel, stub = _stub(first)
    with channel:
        fresh = stub.Route(
            router_pb2.RouteRequest(prompt="hello", request_id="r-1", fresh_request_id=True),
            timeout=10,
        )
        assert not _stored(first.db_url, fresh.decision_id)
        # an id that may have been sent before: looked up, and answered once committed
        reused = stub.Route(router_pb2.RouteRequest(prompt="hello", request_id="r-2"), timeout=10)
        assert _stored(first.db_url, reused.decision_id)
        _wait_stored(first.db_url, fresh.decision_id)
        again = stub.Route(router_pb2.RouteRequest(prompt="hello", request_id="r-1"), timeout=10)
    assert again.replayed and again.decision_id == fresh.decision_id


@pytest.mark.parametrize("committed", [True, False], ids=["after-its-commit", "before-it"])
def test_retry_in_another_process_of_a_fresh_request_id(fresh_db_url: str, committed: bool) -> None:
    # The first attempt's answer was lost on the way (why the client retried). A retry that
    # reaches another process after that attempt's decision committed gets it back; one that
    # arrives before is decided and stored there, and the first attempt's row is dropped: one
    # decision is kept under the id, and it is the one the client has.
    # 3 s: the retry surely arrives before the first attempt's commit, even on a loaded machine
    servers = _servers(fresh_db_url, SLOW_FLUSH_MS if committed else 3000.0)
    with servers as (first, second):
        channel1, stub1 = _stub(first)
        channel2, stub2 = _stub(second)
        with channel1, channel2:
            _retry_of_a_fresh_request_id(first, stub1, stub2, committed)


def _retry_of_a_fresh_request_id(
    first: InProcessServer, stub1: Any, stub2: Any, committed: bool
) -> None:
    request = router_pb2.RouteRequest(prompt="hello", request_id="r-1", fresh_request_id=True)
    lost = stub1.Route(request, timeout=10)
    if committed:
        _wait_stored(first.db_url, lost.decision_id)
    request.fresh_request_id = False  # what the client's retry sends
    retried = stub2.Route(request, timeout=10)
    if committed:
        assert retried.replayed and retried.decision_id == lost.decision_id
        return
    assert not retried.replayed and retried.decision_id != lost.decision_id
    store = first.app.router.store
    deadline = time.monotonic() + 10
    while store.dropped == 0:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the first attempt's decision never settled"
        time.sleep(0.02)
    assert _decisions_of_request(first.db_url, "r-1") == [retried.decision_id]
    outcome = stub1.RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=retried.decision_id, quality=1.0),
        timeout=10,
    )
    assert outcome.event_id > 0
    with pytest.raises(grpc.RpcError) as err:  # (after the wait for young decisions)
        stub2.RecordOutcome(
            router_pb2.RecordOutcomeRequest(decision_id=lost.decision_id, quality=1.0),
            timeout=10,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
