"""banditroute.client against a real server: call with fallbacks, outcomes, auth, mTLS."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from banditroute.client import NO_RETRY, AllModelsFailed, AsyncRouter, Router
from banditroute.v1 import admin_pb2
from tests.helpers import TEST_ADMIN_TOKEN, InProcessServer, mtls_server, register_demo
from tests.tls_certs import make_pki

PROMPT = "Write a haiku about routing."


class FlakyLLM:
    """A fake LLM client: raises for the models in ``down``, answers for the others."""

    def __init__(self, down: int | None = 1) -> None:
        self.down = down  # how many of the first models called raise (None: all)
        self.calls: list[str] = []

    def __call__(self, model: str) -> str:
        self.calls.append(model)
        if self.down is None or len(self.calls) <= self.down:
            raise ConnectionError(f"{model} is down")
        return f"answer from {model}"

    async def acall(self, model: str) -> str:
        await asyncio.sleep(0)
        return self(model)


def _ranking(decision: Any) -> list[str]:
    return [decision.model, *(f.model for f in decision.fallbacks)]


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()  # type: ignore[no-any-return, attr-defined]


def test_router_call_falls_back_to_the_second_ranked_model(grpc_server: Any) -> None:
    llm = FlakyLLM(down=1)
    with Router(grpc_server.address) as router:
        result = router.call(PROMPT, llm, route="default")
        ranking = _ranking(result.decision)

        assert llm.calls == ranking[:2]
        assert (result.model, result.value) == (ranking[1], f"answer from {ranking[1]}")
        assert [(a.model, a.ok) for a in result.attempts] == [
            (ranking[0], False),
            (ranking[1], True),
        ]
        assert result.attempts[0].error == f"ConnectionError: {ranking[0]} is down"
        assert result.outcome is not None and result.outcome.duplicate is False

        # The outcome is recorded: a different one for the same decision is refused.
        assert _code(lambda: router.record(result.decision_id, success=True)) == (
            grpc.StatusCode.ALREADY_EXISTS
        )


def test_router_call_records_exactly_the_documented_outcome(grpc_server: Any) -> None:
    with Router(grpc_server.address) as router:
        result = router.call(
            PROMPT,
            lambda model: f"answer from {model}",
            quality=lambda answer: 0.75,
            usage=lambda answer: {"input_tokens": 12, "output_tokens": len(answer)},
        )
        assert result.model == result.decision.model and len(result.attempts) == 1

        # An identical repeat of what call recorded is a duplicate, so this is what it sent.
        repeat = router.record(
            result.decision_id,
            success=True,
            quality=0.75,
            input_tokens=12,
            output_tokens=len(result.value),
            latency_ms=result.attempts[0].latency_ms,
        )
        assert repeat.duplicate is True
        assert repeat.reward == pytest.approx(result.outcome.reward)


def test_router_call_records_the_failed_attempts_in_the_error(grpc_server: Any) -> None:
    llm = FlakyLLM(down=2)
    with Router(grpc_server.address) as router:
        result = router.call(PROMPT, llm)
        first, second, third = _ranking(result.decision)[:3]
        repeat = router.record(
            result.decision_id,
            success=False,
            error=(
                f"{first}: ConnectionError: {first} is down; "
                f"{second}: ConnectionError: {second} is down; answered by {third}"
            ),
            latency_ms=result.attempts[0].latency_ms,
        )
        assert repeat.duplicate is True
        assert result.model == third


def test_router_call_raises_all_models_failed_after_recording_the_error(
    grpc_server: Any,
) -> None:
    llm = FlakyLLM(down=None)
    with Router(grpc_server.address) as router:
        with pytest.raises(AllModelsFailed) as info:
            router.call(PROMPT, llm)
        failure = info.value
        assert isinstance(failure.__cause__, ConnectionError)
        assert [a.model for a in failure.attempts] == llm.calls
        assert len(llm.calls) == len({*llm.calls}) > 1
        assert failure.outcome is not None
        code = _code(lambda: router.record(failure.decision_id, quality=1.0))
        assert code == grpc.StatusCode.ALREADY_EXISTS


def test_router_call_quality_outside_unit_interval_is_a_value_error(grpc_server: Any) -> None:
    with Router(grpc_server.address) as router, pytest.raises(ValueError, match="quality"):
        router.call(PROMPT, lambda model: "x", quality=lambda answer: 7)


@pytest.mark.parametrize("scorers", [{"quality": 1.0}, {"usage": {"input_tokens": 3}}],
                         ids=["quality-number", "usage-mapping"])
def test_router_call_rejects_a_scorer_that_is_not_a_function_before_routing(
    grpc_server: Any, scorers: dict[str, Any]
) -> None:
    called: list[str] = []
    name = next(iter(scorers))
    with Router(grpc_server.address) as router, pytest.raises(TypeError, match=name):
        router.call(PROMPT, called.append, **scorers)

    async def run() -> None:
        async with AsyncRouter(grpc_server.address) as router:
            await router.call(PROMPT, called.append, **scorers)

    with pytest.raises(TypeError, match=name):
        asyncio.run(run())
    assert called == []  # no model was called, so no outcome was left unrecorded


def test_async_router_call_falls_back_and_records(grpc_server: Any) -> None:
    llm = FlakyLLM(down=1)

    async def run() -> tuple[Any, grpc.StatusCode, float]:
        async with AsyncRouter(grpc_server.address) as router:
            result = await router.call(PROMPT, llm.acall, route="default")
            try:
                await router.record(result.decision_id, quality=1.0)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            decision = await router.route(PROMPT)
            await router.record(decision.decision_id, success=True)
            rated = await router.feedback(decision.decision_id, 0.0)
            return result, code, rated.reward

    result, code, reward = asyncio.run(run())
    ranking = _ranking(result.decision)
    assert llm.calls == ranking[:2] and result.model == ranking[1]
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert -1.0 <= reward <= 1.0


def test_router_route_retry_with_the_same_request_id_gets_the_same_decision(
    grpc_server: Any,
) -> None:
    with Router(grpc_server.address) as router:
        first = router.route(PROMPT, request_id="req-1")
        again = router.route(PROMPT, request_id="req-1")
        other = router.route(PROMPT)
    assert (again.decision_id, again.replayed) == (first.decision_id, True)
    assert other.decision_id != first.decision_id and not other.replayed


def test_router_feedback_changes_the_reward(grpc_server: Any) -> None:
    with Router(grpc_server.address) as router:
        decision = router.route(PROMPT)
        recorded = router.record(decision.decision_id, quality=1.0)
        rated = router.feedback(decision.decision_id, 0.0, comment="wrong")
    assert rated.reward < recorded.reward


def test_router_record_and_feedback_take_the_decision_itself(grpc_server: Any) -> None:
    with Router(grpc_server.address) as router:
        decision = router.route(PROMPT)
        recorded = router.record(decision, quality=1.0)
        again = router.record(decision.decision_id, quality=1.0)
        rated = router.feedback(decision, 0.0)
        result = router.call(PROMPT, lambda model: "x")
        rated_call = router.feedback(result, 1.0)
    assert not recorded.duplicate and again.duplicate  # the first was this decision's outcome
    assert rated.reward < recorded.reward
    assert rated_call.reward > 0


def test_async_router_record_takes_the_decision_itself(grpc_server: Any) -> None:
    async def run() -> tuple[float, float]:
        async with AsyncRouter(grpc_server.address) as router:
            decision = await router.route(PROMPT)
            recorded = await router.record(decision, quality=1.0)
            rated = await router.feedback(decision, 0.0)
            return recorded.reward, rated.reward

    recorded, rated = asyncio.run(run())
    assert rated < recorded


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: r.record(42, quality=1.0), TypeError, "decision_id: expected a decision id"),
        (lambda r: r.record(None, quality=1.0), TypeError, "got NoneType"),
        (lambda r: r.feedback(object(), 1.0), TypeError, "decision_id: expected"),
        (lambda r: r.record("d-1", qualty=1.0), TypeError, "no field 'qualty'"),
        (lambda r: r.record("d-1", quality="high"), TypeError, "^quality: "),
        (lambda r: r.route("hi", max_cost_usd="1"), TypeError, "^max_cost_usd: "),
        (lambda r: r.route(None), TypeError, "^prompt: "),
    ],
)
def test_router_names_the_argument_it_cannot_send(call: Any, error: type, message: str) -> None:
    # No server: the request is refused while it is built, before any RPC.
    with Router("127.0.0.1:1") as router, pytest.raises(error, match=message):
        call(router)


@pytest.fixture
def keyed_server(fresh_db_url: str) -> Iterator[InProcessServer]:
    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url, require_api_keys=True)
    try:
        yield server
    finally:
        server.stop()


def test_router_sends_the_api_key_and_the_admin_token(keyed_server: InProcessServer) -> None:
    address = keyed_server.address
    with Router(address, admin_token=TEST_ADMIN_TOKEN) as admin:
        key = admin.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(tenant="acme")).key
    with Router(address, api_key=key) as router:
        result = router.call(PROMPT, lambda model: "ok")
        assert result.outcome is not None
        assert _code(lambda: router.admin.ListModels(admin_pb2.ListModelsRequest())) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
    with Router(address, retry=NO_RETRY) as anonymous:
        assert _code(lambda: anonymous.route(PROMPT)) == grpc.StatusCode.UNAUTHENTICATED


def test_router_connects_with_mutual_tls(fresh_db_url: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    register_demo(fresh_db_url)
    server = mtls_server(fresh_db_url, pki)
    try:
        with Router(
            server.address,
            root_certificates=pki.ca.cert,
            client_cert=pki.client.cert,
            client_key=pki.client.key.read_bytes(),
        ) as router:
            assert router.call(PROMPT, lambda model: "ok").outcome is not None
        with Router(
            server.address, root_certificates=pki.ca.cert, retry=NO_RETRY, timeout=5
        ) as no_client_cert:
            assert _code(lambda: no_client_cert.route(PROMPT)) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
