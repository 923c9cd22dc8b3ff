"""Stateful fuzzing of the write RPCs: outcomes and feedback for real, unknown, malformed and
repeated decision ids, with hostile numbers. What the server acknowledged must be exactly what
the database holds: no lost write, no extra write, no changed value.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import grpc
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banditroute.service.config import libpq_url
from banditroute.service.storage.ids import new_decision_id
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.fault.fuzzing import BAD_CODES, assert_db_invariants, assert_serving, fuzz_settings
from tests.fault.strategies import INJECTION_STRINGS, nasty_floats, nasty_text

pytestmark = pytest.mark.fault

EXAMPLES = 300
DECISIONS = 6

_SETTINGS = fuzz_settings(EXAMPLES)

_BAD_NUMBERS = {code.value[0] for code in BAD_CODES}
_ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
}


def _decision_ids(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),  # twice: most requests should reach a real decision
        st.builds(lambda: str(uuid.uuid4())),
        st.builds(lambda: str(new_decision_id())),
        st.sampled_from(["", "not-a-uuid", "0" * 64, "{" + known[0] + "}", known[0].upper()]),
        st.sampled_from(INJECTION_STRINGS),
        nasty_text(max_size=80),
    )


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def _outcomes(known: list[str]) -> st.SearchStrategy[router_pb2.RecordOutcomeRequest]:
    @st.composite
    def build(draw: st.DrawFn) -> router_pb2.RecordOutcomeRequest:
        request = router_pb2.RecordOutcomeRequest(decision_id=draw(_decision_ids(known)))
        quality = draw(_optional(st.one_of(nasty_floats(), st.floats(0.0, 1.0))))
        if quality is not None:
            request.quality = quality
        success = draw(_optional(st.booleans()))
        if success is not None:
            request.success = success
        for name in ("input_tokens", "output_tokens"):
            value = draw(_optional(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 5000)))
            if value is not None:
                setattr(request, name, value)
        for name in ("cost_usd", "latency_ms"):
            value = draw(_optional(st.one_of(nasty_floats(), st.floats(0.0, 10.0))))
            if value is not None:
                setattr(request, name, value)
        if draw(st.booleans()):
            request.error = draw(nasty_text(max_size=40))
        return request

    return build()


def _plausible_outcomes(known: list[str]) -> st.SearchStrategy[router_pb2.RecordOutcomeRequest]:
    """Well-formed outcomes for real decisions (so the stateful checks see acceptances)."""
    return st.builds(
        router_pb2.RecordOutcomeRequest,
        decision_id=st.sampled_from(known),
        quality=st.floats(0.0, 1.0),
        success=st.booleans(),
        input_tokens=st.integers(0, 10_000),
        output_tokens=st.integers(0, 10_000),
        latency_ms=st.floats(0.0, 60_000.0),
    )


def _feedback(known: list[str]) -> st.SearchStrategy[router_pb2.SubmitFeedbackRequest]:
    return st.builds(
        router_pb2.SubmitFeedbackRequest,
        decision_id=_decision_ids(known),
        rating=st.one_of(nasty_floats(), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
        comment=_optional(nasty_text(max_size=200)),
        source=st.sampled_from(["", "user", "judge", "'; --"]),
        feedback_id=st.sampled_from(["", "f1", "f2", "x' OR '1'='1"]),
    )


def _checked_call(rpc: Any, request: Any) -> tuple[Any, grpc.StatusCode]:
    """(reply or None, status code) of ``rpc(request)``; the code must be an allowed one."""
    try:
        reply, code = rpc(request, timeout=30), grpc.StatusCode.OK
        error = None
    except grpc.RpcError as exc:
        reply, code, error = None, exc.code(), exc
    assert code not in BAD_CODES, f"{code} {error and error.details()!r} for {request!r}"
    assert code in _ALLOWED, f"unexpected {code} for {request!r}"
    return reply, code


def _canon(decision_id: str) -> str:
    """The decision a client-supplied id names (UUID text has several spellings)."""
    try:
        return str(uuid.UUID(decision_id))
    except ValueError:
        return decision_id


def _content(request: router_pb2.RecordOutcomeRequest) -> router_pb2.RecordOutcomeRequest:
    copy = router_pb2.RecordOutcomeRequest()
    copy.CopyFrom(request)
    copy.decision_id = _canon(request.decision_id)
    return copy


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.fixture
def router(grpc_server: Any) -> Any:
    with grpc.insecure_channel(grpc_server.address) as channel:
        yield grpc_server, channel, router_pb2_grpc.RouterStub(channel)


def _make_decisions(stub: router_pb2_grpc.RouterStub) -> list[str]:
    return [
        stub.Route(router_pb2.RouteRequest(prompt=f"fuzz decision {i}"), timeout=30).decision_id
        for i in range(DECISIONS)
    ]


def test_fuzz_outcomes_acknowledged_exactly_as_stored(router: Any) -> None:
    server, channel, stub = router
    known = _make_decisions(stub)
    accepted: dict[str, router_pb2.RecordOutcomeRequest] = {}
    sent: list[router_pb2.RecordOutcomeRequest] = []

    def record(request: router_pb2.RecordOutcomeRequest) -> None:
        reply, code = _checked_call(stub.RecordOutcome, request)
        did = _canon(request.decision_id)
        if code == grpc.StatusCode.OK:
            assert did in known, "outcome accepted for an unknown decision"
            assert reply is not None and math.isfinite(reply.reward)
            if reply.duplicate:
                assert accepted[did] == _content(request), "non-identical duplicate"
            else:
                assert did not in accepted, "second outcome accepted"
                accepted[did] = _content(request)
        elif code == grpc.StatusCode.ALREADY_EXISTS:
            assert did in accepted

    @_SETTINGS
    @given(
        request=st.one_of(_outcomes(known), _plausible_outcomes(known)),
        repeat=st.integers(-1, 20),
    )
    def check(request: router_pb2.RecordOutcomeRequest, repeat: int) -> None:
        if 0 <= repeat < len(sent):  # duplicate or late repeat of an earlier request
            request = sent[-1 - repeat]
        sent.append(request)
        record(request)

    check()
    # Late retries of everything accepted are answered as duplicates and change nothing.
    for request in list(accepted.values()):
        reply = stub.RecordOutcome(request, timeout=30)
        assert reply.duplicate
    assert accepted, "the fuzzer never got an outcome accepted"

    with psycopg.connect(libpq_url(server.db_url)) as conn:
        rows = {
            str(did): (quality, success, cost)
            for did, quality, success, cost in conn.execute(
                "SELECT decision_id, quality, success, cost_usd FROM outcomes"
            )
        }
    assert set(rows) == set(accepted)
    for did, request in accepted.items():
        quality, success, cost = rows[did]
        if request.HasField("quality"):
            assert _same(quality, request.quality)
        if request.HasField("success"):
            assert success == request.success
        if request.HasField("cost_usd"):
            assert _same(cost, request.cost_usd)
    assert_serving(channel)
    assert_db_invariants(server.db_url)


def test_fuzz_outcome_batches_item_results_match_storage(router: Any) -> None:
    server, channel, stub = router
    known = _make_decisions(stub)
    accepted: set[str] = set()

    @settings(_SETTINGS, max_examples=60)
    @given(batch=st.lists(st.one_of(_outcomes(known), _plausible_outcomes(known)), max_size=12))
    def check(batch: list[router_pb2.RecordOutcomeRequest]) -> None:
        try:
            reply = stub.RecordOutcomes(
                router_pb2.RecordOutcomesRequest(outcomes=batch), timeout=30
            )
        except grpc.RpcError as exc:
            assert exc.code() not in BAD_CODES, exc.details()
            return
        assert len(reply.results) == len(batch)
        assert reply.accepted + reply.rejected == len(batch)
        for request, result in zip(batch, reply.results, strict=True):
            assert result.code not in _BAD_NUMBERS, result.message
            if result.code == 0 and not result.duplicate:
                did = _canon(request.decision_id)
                assert did in known
                assert did not in accepted, "second outcome accepted in batch"
                accepted.add(did)

    check()
    assert accepted, "no batch item was ever accepted"
    with psycopg.connect(libpq_url(server.db_url)) as conn:
        stored = {str(r[0]) for r in conn.execute("SELECT decision_id FROM outcomes")}
    assert stored == accepted
    assert_serving(channel)
    assert_db_invariants(server.db_url)


def test_fuzz_feedback_acknowledged_exactly_as_stored(router: Any) -> None:
    server, channel, stub = router
    known = _make_decisions(stub)
    # Some decisions get an outcome first, so feedback also arrives "late", after outcomes.
    for did in known[:3]:
        stub.RecordOutcome(router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.5))
    accepted: dict[tuple[str, str], router_pb2.SubmitFeedbackRequest] = {}

    @_SETTINGS
    @given(request=_feedback(known), repeat=st.booleans())
    def check(request: router_pb2.SubmitFeedbackRequest, repeat: bool) -> None:
        for _ in range(2 if repeat else 1):
            reply, code = _checked_call(stub.SubmitFeedback, request)
            did = _canon(request.decision_id)
            key = (did, request.feedback_id or f"source:{request.source}")
            if code == grpc.StatusCode.OK:
                assert did in known
                assert reply is not None and math.isfinite(reply.reward)
                if reply.duplicate:
                    assert key in accepted
                else:
                    assert key not in accepted, "second feedback accepted for one key"
                    accepted[key] = request

    check()
    assert accepted, "the fuzzer never got feedback accepted"
    with psycopg.connect(libpq_url(server.db_url)) as conn:
        rows = {
            (str(did), key): rating
            for did, key, rating in conn.execute(
                "SELECT decision_id, feedback_key, rating FROM feedback"
            )
        }
    assert set(rows) == set(accepted)
    for key, request in accepted.items():
        assert rows[key] == request.rating
    assert_serving(channel)
    assert_db_invariants(server.db_url)
