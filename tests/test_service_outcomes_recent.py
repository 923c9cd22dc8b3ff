"""Outcomes for decisions this process answered recently: joined from memory, not read back.

The write transaction checks such an outcome (``unverified``) and answers STALE when its
decision has an outcome or feedback already; the outcome is then read and written again, so
the answer is what it would have been had the decision been read first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from banditroute.service.core.outcomes import OutcomeInput, validate_outcome
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, register_demo


@pytest.fixture
def two_servers(fresh_db_url: str) -> Iterator[tuple[InProcessServer, InProcessServer]]:
    register_demo(fresh_db_url)
    a = InProcessServer(fresh_db_url)
    try:
        b = InProcessServer(fresh_db_url)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def _stub(server: InProcessServer) -> Any:
    return router_pb2_grpc.RouterStub(grpc.insecure_channel(server.address))


def _routed(server: InProcessServer, prompt: str) -> Any:
    """Route ``prompt`` on ``server`` and wait until its decision is in the log."""
    reply = _stub(server).Route(router_pb2.RouteRequest(prompt=prompt))
    server.sync()
    return reply


def _count_reads(server: InProcessServer) -> list[int]:
    store = server.app.outcomes.store
    read = store.load_decisions
    calls = [0]

    async def counting(keys: Any) -> Any:
        calls[0] += 1
        return await read(keys)

    store.load_decisions = counting
    return calls


def test_outcome_of_a_recent_decision_is_not_read_back(grpc_server: InProcessServer) -> None:
    router = _stub(grpc_server)
    reads = _count_reads(grpc_server)
    reply = router.Route(router_pb2.RouteRequest(prompt="What is 2 + 2?"))
    outcome = router.RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=0.5)
    )
    assert outcome.event_id > 0 and not outcome.duplicate
    assert reads == [0]
    again = router.RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=0.5)
    )
    assert again.duplicate and again.event_id == outcome.event_id
    assert again.reward == outcome.reward
    assert reads == [1]  # forgotten once it has an outcome: the repeat reads the decision


def test_feedback_from_another_process_is_merged(
    two_servers: tuple[InProcessServer, InProcessServer],
) -> None:
    a, b = two_servers
    reply = _routed(a, "Write a haiku about Postgres")
    _stub(b).SubmitFeedback(
        router_pb2.SubmitFeedbackRequest(decision_id=reply.decision_id, rating=1.0, source="user")
    )
    reads = _count_reads(a)
    outcome = _stub(a).RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=0.2)
    )
    assert reads == [1]  # written unverified, found STALE, then read and written again
    did = uuid.UUID(reply.decision_id)
    (stored,) = a.call(a.app.outcomes.store.load_decisions([(did, _created(did))])).values()
    item = validate_outcome(OutcomeInput(decision_id=reply.decision_id, quality=0.2))
    expected = a.app.outcomes._outcome_row(item, stored)["reward"]  # the read-first answer
    assert outcome.reward == pytest.approx(expected, abs=0, rel=0)
    assert stored.feedback  # the rating is merged, not ignored


def test_outcome_recorded_by_another_process(
    two_servers: tuple[InProcessServer, InProcessServer],
) -> None:
    a, b = two_servers
    reply = _routed(a, "Translate 'cat' to French")
    first = _stub(b).RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=0.4)
    )
    same = _stub(a).RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=0.4)
    )
    assert same.duplicate and same.event_id == first.event_id and same.reward == first.reward
    reply2 = _routed(a, "Translate 'dog' to French")
    _stub(b).RecordOutcome(
        router_pb2.RecordOutcomeRequest(decision_id=reply2.decision_id, quality=0.4)
    )
    with pytest.raises(grpc.RpcError) as err:
        _stub(a).RecordOutcome(
            router_pb2.RecordOutcomeRequest(decision_id=reply2.decision_id, quality=0.9)
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already has a different outcome" in (err.value.details() or "")


def test_batch_with_a_stale_item_keeps_every_answer(
    two_servers: tuple[InProcessServer, InProcessServer],
) -> None:
    a, b = two_servers
    router = _stub(a)
    ids = [router.Route(router_pb2.RouteRequest(prompt=f"q{i}")).decision_id for i in range(3)]
    a.sync()
    _stub(b).SubmitFeedback(
        router_pb2.SubmitFeedbackRequest(decision_id=ids[1], rating=0.0, source="user")
    )
    reply = router.RecordOutcomes(
        router_pb2.RecordOutcomesRequest(
            outcomes=[
                router_pb2.RecordOutcomeRequest(decision_id=ids[0], quality=1.0),
                router_pb2.RecordOutcomeRequest(decision_id=ids[1], quality=1.0),
                router_pb2.RecordOutcomeRequest(decision_id=ids[1], quality=1.0),
                router_pb2.RecordOutcomeRequest(decision_id=ids[2], success=True),
            ]
        )
    )
    assert [r.code for r in reply.results] == [0, 0, 0, 0]
    assert reply.accepted == 4 and reply.rejected == 0
    first, repeat = reply.results[1], reply.results[2]
    assert not first.duplicate and repeat.duplicate
    assert repeat.event_id == first.event_id and repeat.reward == first.reward
    assert first.reward < reply.results[0].reward  # the thumbs-down is merged


def _created(did: uuid.UUID) -> Any:
    from banditroute.service.storage.ids import decision_created_at

    return decision_created_at(did)
