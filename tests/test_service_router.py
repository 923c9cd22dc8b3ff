"""End-to-end Router behaviour on a real server (127.0.0.1:0) over a real PostgreSQL database."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from banditroute.service.config import libpq_url
from banditroute.service.core.demo import DEMO_MODELS
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, rpc_code

IA = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def router(grpc_server: InProcessServer) -> Any:
    with grpc.insecure_channel(grpc_server.address) as channel:
        yield router_pb2_grpc.RouterStub(channel)


def _rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return list(conn.execute(sql, params).fetchall())


# -- happy path -----------------------------------------------------------------------------


def test_route_answers_a_model_and_logs_the_decision(
    grpc_server: InProcessServer, router: Any
) -> None:
    reply = router.Route(router_pb2.RouteRequest(prompt="Summarise this contract in 3 bullets"))
    models = {m for (m,) in _rows(grpc_server.db_url, "SELECT id FROM models WHERE enabled")}
    assert reply.model in models
    assert reply.route == "default" and reply.policy and reply.policy_version >= 1
    assert 0.0 < reply.propensity <= 1.0
    assert {f.model for f in reply.fallbacks} == models - {reply.model}
    assert reply.estimated_cost_usd > 0 and not reply.replayed
    grpc_server.sync()  # the decision commits after the answer
    stored = _rows(
        grpc_server.db_url,
        "SELECT model, propensity, prompt, octet_length(prompt_hash) FROM decisions "
        "WHERE decision_id = %s",
        uuid.UUID(reply.decision_id),
    )
    assert stored == [(reply.model, pytest.approx(reply.propensity), None, 32)]


def test_outcome_then_feedback_change_the_reward(grpc_server: InProcessServer, router: Any) -> None:
    reply = router.Route(router_pb2.RouteRequest(prompt="What is 2 + 2?"))
    outcome = router.RecordOutcome(
        router_pb2.RecordOutcomeRequest(
            decision_id=reply.decision_id, quality=0.4, input_tokens=10, output_tokens=5
        )
    )
    assert outcome.event_id > 0 and not outcome.duplicate
    fb = router.SubmitFeedback(
        router_pb2.SubmitFeedbackRequest(decision_id=reply.decision_id, rating=1.0, source="user")
    )
    assert fb.event_id > outcome.event_id
    assert fb.reward > outcome.reward  # a thumbs-up raises the merged quality
    (cost,) = _rows(
        grpc_server.db_url,
        "SELECT cost_usd FROM outcomes WHERE decision_id = %s",
        uuid.UUID(reply.decision_id),
    )[0]
    assert cost > 0  # computed from the tokens and the model's prices


def test_batch_outcomes_report_each_item(grpc_server: InProcessServer, router: Any) -> None:
    ids = [router.Route(router_pb2.RouteRequest(prompt=f"q{i}")).decision_id for i in range(3)]
    reply = router.RecordOutcomes(
        router_pb2.RecordOutcomesRequest(
            outcomes=[
                router_pb2.RecordOutcomeRequest(decision_id=ids[0], quality=1.0),
                router_pb2.RecordOutcomeRequest(decision_id=ids[1], quality=7.0),
                router_pb2.RecordOutcomeRequest(decision_id=str(uuid.uuid4()), quality=1.0),
                router_pb2.RecordOutcomeRequest(decision_id=ids[2], success=True),
            ]
        )
    )
    codes = [r.code for r in reply.results]
    assert codes == [0, IA.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert reply.accepted == 2 and reply.rejected == 2
    assert reply.results[0].event_id < reply.results[3].event_id


def test_learning_converges_to_the_model_outcomes_favour(
    grpc_server: InProcessServer, router: Any
) -> None:
    models = sorted(m for (m,) in _rows(grpc_server.db_url, "SELECT id FROM models WHERE enabled"))
    best = models[len(models) // 2]
    chosen: list[str] = []
    for i in range(240):
        reply = router.Route(router_pb2.RouteRequest(prompt=f"question number {i % 17}"))
        chosen.append(reply.model)
        router.RecordOutcome(
            router_pb2.RecordOutcomeRequest(
                decision_id=reply.decision_id, quality=1.0 if reply.model == best else 0.0
            )
        )
        if i % 20 == 19:
            grpc_server.sync()
    last = Counter(chosen[-60:])
    assert last[best] >= 45, last  # most of the late decisions go to the rewarded model


def test_route_request_id_is_idempotent(grpc_server: InProcessServer, router: Any) -> None:
    req = router_pb2.RouteRequest(prompt="hello", request_id="req-42", tenant="")
    first = router.Route(req)
    again = router.Route(req)
    assert not first.replayed and again.replayed
    assert again.decision_id == first.decision_id and again.model == first.model
    other = router.Route(router_pb2.RouteRequest(prompt="hello", request_id="req-43"))
    assert other.decision_id != first.decision_id
    (count,) = _rows(
        grpc_server.db_url, "SELECT count(*) FROM decisions WHERE request_id = 'req-42'"
    )[0]
    assert count == 1


def test_request_id_is_idempotent_across_processes(grpc_server: InProcessServer) -> None:
    second = InProcessServer(grpc_server.db_url)
    try:
        req = router_pb2.RouteRequest(prompt="hello", request_id="shared-id")
        with (
            grpc.insecure_channel(grpc_server.address) as a,
            grpc.insecure_channel(second.address) as b,
        ):
            first = router_pb2_grpc.RouterStub(a).Route(req)
            replay = router_pb2_grpc.RouterStub(b).Route(req)
        assert replay.replayed and replay.decision_id == first.decision_id
    finally:
        second.stop()


def test_retry_whose_new_decision_fails_gets_the_stored_one(grpc_server: InProcessServer) -> None:
    # Route does not read the database before deciding: a retry is found out by its write's
    # claim. When the retry's new decision cannot be made (here: its only model was disabled
    # since), the stored decision still answers it.
    second = InProcessServer(grpc_server.db_url)  # the stored row answers, not the cache
    solo = admin_pb2.Model(id="solo", output_usd_per_mtok=1.0, enabled=True)
    try:
        with (
            grpc.insecure_channel(grpc_server.address) as a,
            grpc.insecure_channel(second.address) as b,
        ):
            admin = admin_pb2_grpc.AdminStub(a)
            md = grpc_server.admin_metadata
            admin.PutModel(admin_pb2.PutModelRequest(model=solo), metadata=md)
            request = router_pb2.RouteRequest(prompt="hi", candidates=["solo"], request_id="r-9")
            grpc_server.sync()
            first = router_pb2_grpc.RouterStub(a).Route(request)
            solo.enabled = False
            admin.PutModel(admin_pb2.PutModelRequest(model=solo), metadata=md)
            other = router_pb2_grpc.RouterStub(b)
            probe = router_pb2.RouteRequest(prompt="hi", candidates=["solo"])
            for _ in range(200):  # until the second process has the change
                if rpc_code(lambda: other.Route(probe)) == grpc.StatusCode.FAILED_PRECONDITION:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the second process never saw the model disabled")
            retried = other.Route(request)
    finally:
        second.stop()
    assert retried.replayed and retried.decision_id == first.decision_id


@pytest.mark.parametrize(
    "changed",
    [
        {"prompt": "something else"},
        {"route": "other"},
        {"numeric_context": {"n": 2.0}},
        {"categorical_context": {"lang": "fr"}},
    ],
    ids=["prompt", "route", "numeric-context", "categorical-context"],
)
def test_request_id_reused_with_another_payload_is_already_exists(
    grpc_server: InProcessServer, changed: dict[str, Any]
) -> None:
    base: dict[str, Any] = {
        "prompt": "hello",
        "numeric_context": {"n": 1.0},
        "categorical_context": {"lang": "en"},
    }
    rid = f"reuse-{uuid.uuid4().hex}"
    second = InProcessServer(grpc_server.db_url)  # the stored row answers, not the cache
    try:
        with (
            grpc.insecure_channel(grpc_server.address) as a,
            grpc.insecure_channel(second.address) as b,
        ):
            first = router_pb2_grpc.RouterStub(a)
            other = router_pb2_grpc.RouterStub(b)
            first.Route(router_pb2.RouteRequest(request_id=rid, **base))
            for stub in (first, other):
                with pytest.raises(grpc.RpcError) as err:
                    stub.Route(router_pb2.RouteRequest(request_id=rid, **{**base, **changed}))
                assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
                assert rid in (err.value.details() or "")
            again = other.Route(router_pb2.RouteRequest(request_id=rid, **base))
            assert again.replayed
    finally:
        second.stop()


def test_request_id_reused_with_other_candidates_never_answers_outside_them(
    grpc_server: InProcessServer, router: Any
) -> None:
    rid = f"cands-{uuid.uuid4().hex}"
    first = router.Route(router_pb2.RouteRequest(prompt="hi", request_id=rid))
    others = [m for m, *_ in DEMO_MODELS if m != first.model]
    second = InProcessServer(grpc_server.db_url)
    try:
        with grpc.insecure_channel(second.address) as b:
            for stub in (router, router_pb2_grpc.RouterStub(b)):
                with pytest.raises(grpc.RpcError) as err:
                    stub.Route(
                        router_pb2.RouteRequest(prompt="hi", request_id=rid, candidates=others)
                    )
                assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    finally:
        second.stop()


def test_duplicate_outcome_is_acknowledged_and_conflict_rejected(router: Any) -> None:
    did = router.Route(router_pb2.RouteRequest(prompt="x")).decision_id
    req = router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.5, latency_ms=120.0)
    first = router.RecordOutcome(req)
    again = router.RecordOutcome(req)
    assert again.duplicate and again.event_id == first.event_id and again.reward == first.reward
    different = router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.9)
    assert rpc_code(lambda: router.RecordOutcome(different)) == grpc.StatusCode.ALREADY_EXISTS


def test_feedback_id_reuse(router: Any) -> None:
    did = router.Route(router_pb2.RouteRequest(prompt="x")).decision_id
    req = router_pb2.SubmitFeedbackRequest(decision_id=did, rating=0.75, feedback_id="fb-1")
    first = router.SubmitFeedback(req)
    again = router.SubmitFeedback(req)
    assert again.duplicate and again.event_id == first.event_id
    changed = router_pb2.SubmitFeedbackRequest(decision_id=did, rating=0.0, feedback_id="fb-1")
    assert rpc_code(lambda: router.SubmitFeedback(changed)) == grpc.StatusCode.ALREADY_EXISTS


def test_a_later_different_rating_from_the_same_source_is_refused_and_changes_nothing(
    router: Any,
) -> None:
    did = router.Route(router_pb2.RouteRequest(prompt="rate me")).decision_id
    first = router.SubmitFeedback(
        router_pb2.SubmitFeedbackRequest(decision_id=did, rating=1.0, source="user")
    )
    with pytest.raises(grpc.RpcError) as err:
        router.SubmitFeedback(
            router_pb2.SubmitFeedbackRequest(decision_id=did, rating=0.0, source="user")
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "Changing a rating" in (err.value.details() or "")  # points at the documented way
    same = router.SubmitFeedback(
        router_pb2.SubmitFeedbackRequest(decision_id=did, rating=1.0, source="user")
    )
    assert same.duplicate and same.reward == first.reward


# -- every error path ---------------------------------------------------------------------

ROUTE_ERRORS = [
    ("empty-prompt", {"prompt": ""}, IA),
    ("oversized-prompt", {"prompt": "x" * ((1 << 20) + 1)}, IA),
    ("nan-context", {"prompt": "p", "numeric_context": {"k": math.nan}}, IA),
    ("inf-context", {"prompt": "p", "numeric_context": {"k": math.inf}}, IA),
    ("negative-max-cost", {"prompt": "p", "max_cost_usd": -1.0}, IA),
    ("nan-max-cost", {"prompt": "p", "max_cost_usd": math.nan}, IA),
    ("unknown-candidate", {"prompt": "p", "candidates": ["no-such-model"]}, IA),
    ("unknown-route", {"prompt": "p", "route": "nope"}, grpc.StatusCode.NOT_FOUND),
    (
        "nothing-under-max-cost",
        {"prompt": "p", "max_cost_usd": 0.0},
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
]


@pytest.mark.parametrize(
    ("fields", "code"), [(f, c) for _, f, c in ROUTE_ERRORS], ids=[i for i, _, _ in ROUTE_ERRORS]
)
def test_route_rejects_bad_input(router: Any, fields: dict[str, Any], code: Any) -> None:
    assert rpc_code(lambda: router.Route(router_pb2.RouteRequest(**fields))) == code


def _outcome_errors(did: str) -> list[tuple[str, dict[str, Any], grpc.StatusCode]]:
    return [
        ("bad-id", {"decision_id": "not-a-uuid", "quality": 1.0}, IA),
        (
            "unknown-decision",
            {"decision_id": str(_uuid7()), "quality": 1.0},
            grpc.StatusCode.NOT_FOUND,
        ),
        ("quality-above-1", {"decision_id": did, "quality": 1.5}, IA),
        ("nan-quality", {"decision_id": did, "quality": math.nan}, IA),
        ("negative-cost", {"decision_id": did, "quality": 1.0, "cost_usd": -0.1}, IA),
        ("negative-tokens", {"decision_id": did, "quality": 1.0, "output_tokens": -3}, IA),
        ("inf-latency", {"decision_id": did, "quality": 1.0, "latency_ms": math.inf}, IA),
        ("nothing-reported", {"decision_id": did}, IA),
    ]


def _uuid7() -> uuid.UUID:
    from banditroute.service.storage.ids import new_decision_id

    return new_decision_id()


def test_three_megabyte_prompt_is_invalid_argument_naming_the_limit(router: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        router.Route(router_pb2.RouteRequest(prompt="a" * (3 << 20)))
    assert err.value.code() == IA
    assert f"{(1 << 20) + (1 << 20)} bytes" in (err.value.details() or "")


def test_record_outcome_rejects_bad_input(router: Any) -> None:
    did = router.Route(router_pb2.RouteRequest(prompt="p")).decision_id
    for name, fields, code in _outcome_errors(did):
        got = rpc_code(lambda f=fields: router.RecordOutcome(router_pb2.RecordOutcomeRequest(**f)))
        assert got == code, name


def test_submit_feedback_rejects_bad_input(router: Any) -> None:
    did = router.Route(router_pb2.RouteRequest(prompt="p")).decision_id
    cases = [
        ({"decision_id": did, "rating": 1.5}, IA),
        ({"decision_id": did, "rating": math.nan}, IA),
        ({"decision_id": did, "rating": -0.1}, IA),
        ({"decision_id": "zzz", "rating": 1.0}, IA),
        ({"decision_id": str(_uuid7()), "rating": 1.0}, grpc.StatusCode.NOT_FOUND),
    ]
    for fields, code in cases:
        req = router_pb2.SubmitFeedbackRequest(**fields)
        assert rpc_code(lambda r=req: router.SubmitFeedback(r)) == code, fields


def test_health_and_reflection_are_served(grpc_server: InProcessServer) -> None:
    with grpc.insecure_channel(grpc_server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "banditroute.v1.Router", "banditroute.v1.Admin"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"banditroute.v1.Router", "banditroute.v1.Admin", "grpc.health.v1.Health"} <= names
