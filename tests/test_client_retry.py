"""banditroute.client retries, deadlines and metadata, against a scripted fake Router server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from banditroute.client import AsyncRouter, RetryPolicy, Router
from banditroute.v1 import router_pb2, router_pb2_grpc

FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.01)


class ScriptedRouter(router_pb2_grpc.RouterServicer):
    """Fails each call with the next status code of ``script`` (None: answer), recording every
    request and its metadata."""

    def __init__(self) -> None:
        self.script: list[grpc.StatusCode | tuple[grpc.StatusCode, str] | None] = []
        self.requests: list[Any] = []
        self.metadata: list[dict[str, str]] = []
        self.delay_s = 0.0

    def _next(self, request: Any, context: grpc.ServicerContext) -> None:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))  # type: ignore[arg-type]
        time.sleep(self.delay_s)
        step = self.script.pop(0) if self.script else None
        if step is not None:
            code, details = step if isinstance(step, tuple) else (step, "scripted failure")
            context.abort(code, details)

    def Route(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next(request, context)
        return router_pb2.RouteResponse(decision_id="d-1", model="m1")

    def RecordOutcome(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next(request, context)
        return router_pb2.RecordOutcomeResponse(reward=0.5)

    def SubmitFeedback(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._next(request, context)
        return router_pb2.SubmitFeedbackResponse(reward=0.5)


@pytest.fixture
def fake() -> Iterator[tuple[ScriptedRouter, str]]:
    servicer = ScriptedRouter()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    router_pb2_grpc.add_RouterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


RETRIED = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]
NOT_RETRIED = [
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INTERNAL,
]


@pytest.mark.parametrize("code", RETRIED, ids=lambda c: c.name)
def test_route_retries_documented_codes_with_the_same_request_id(
    fake: tuple[ScriptedRouter, str], code: grpc.StatusCode
) -> None:
    servicer, address = fake
    servicer.script = [code, code]
    with Router(address, retry=FAST, api_key="k-1") as router:
        decision = router.route("hi", route="default")
    assert decision.decision_id == "d-1"
    assert len(servicer.requests) == 3
    assert len({r.request_id for r in servicer.requests}) == 1
    assert servicer.requests[0].request_id  # generated, so the retries are idempotent
    # only the first attempt says the id is new: a retry must find what that attempt stored
    assert [r.fresh_request_id for r in servicer.requests] == [True, False, False]
    assert all(md.get("x-api-key") == "k-1" for md in servicer.metadata)
    assert not any("authorization" in md for md in servicer.metadata)


@pytest.mark.parametrize("code", NOT_RETRIED, ids=lambda c: c.name)
def test_route_does_not_retry_other_codes(
    fake: tuple[ScriptedRouter, str], code: grpc.StatusCode
) -> None:
    servicer, address = fake
    servicer.script = [code]
    with Router(address, retry=FAST) as router, pytest.raises(grpc.RpcError) as info:
        router.route("hi")
    assert info.value.code() == code  # type: ignore[attr-defined]
    assert len(servicer.requests) == 1


def test_record_gives_up_after_max_attempts(fake: tuple[ScriptedRouter, str]) -> None:
    servicer, address = fake
    servicer.script = [grpc.StatusCode.UNAVAILABLE] * 10
    policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.01)
    with Router(address, retry=policy) as router, pytest.raises(grpc.RpcError) as info:
        router.record("d-1", success=True)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert len(servicer.requests) == 3
    assert len({r.SerializeToString() for r in servicer.requests}) == 1


def test_oversized_message_is_not_retried(fake: tuple[ScriptedRouter, str]) -> None:
    servicer, address = fake
    servicer.script = [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (5 vs. 4)")
    ]
    with Router(address, retry=FAST) as router, pytest.raises(grpc.RpcError):
        router.route("hi")
    assert len(servicer.requests) == 1


def test_default_deadline_applies_to_each_call(fake: tuple[ScriptedRouter, str]) -> None:
    servicer, address = fake
    servicer.delay_s = 0.5
    with Router(address, timeout=0.05, retry=FAST) as router:
        with pytest.raises(grpc.RpcError) as info:
            router.route("hi")
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        servicer.delay_s = 0.0
        assert router.feedback("d-1", 1.0, timeout=5).reward == 0.5


def test_call_returns_the_answer_when_recording_fails(
    fake: tuple[ScriptedRouter, str], caplog: pytest.LogCaptureFixture
) -> None:
    servicer, address = fake
    servicer.script = [None, grpc.StatusCode.NOT_FOUND]  # Route answers, RecordOutcome fails
    with Router(address, retry=FAST) as router:
        result = router.call("hi", lambda model: f"{model} answered")
    assert (result.value, result.outcome) == ("m1 answered", None)
    assert "could not record the outcome of decision d-1" in caplog.text


def test_async_router_retries_then_answers(fake: tuple[ScriptedRouter, str]) -> None:
    servicer, address = fake
    servicer.script = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]

    async def run() -> Any:
        async with AsyncRouter(address, retry=FAST, api_key="k-2") as router:
            return await router.route("hi")

    assert asyncio.run(run()).decision_id == "d-1"
    assert len(servicer.requests) == 3
    assert len({r.request_id for r in servicer.requests}) == 1
    assert [r.fresh_request_id for r in servicer.requests] == [True, False, False]
    assert servicer.metadata[-1].get("x-api-key") == "k-2"


def test_async_router_does_not_retry_invalid_argument(fake: tuple[ScriptedRouter, str]) -> None:
    servicer, address = fake
    servicer.script = [grpc.StatusCode.INVALID_ARGUMENT]

    async def run() -> grpc.StatusCode:
        async with AsyncRouter(address, retry=FAST) as router:
            try:
                await router.record("d-1", quality=2.0)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        raise AssertionError("no error")

    assert asyncio.run(run()) == grpc.StatusCode.INVALID_ARGUMENT
    assert len(servicer.requests) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_attempts": 0}, "max_attempts", id="no-attempts"),
        pytest.param({"initial_backoff_s": 3.0}, "backoffs", id="initial-above-max"),
        pytest.param({"multiplier": 0.5}, "multiplier", id="shrinking"),
    ],
)
def test_retry_policy_rejects_invalid_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


def test_router_mutual_tls_needs_both_cert_and_key() -> None:
    with pytest.raises(ValueError, match="together"):
        Router("127.0.0.1:1", client_key=b"-----BEGIN PRIVATE KEY-----")
