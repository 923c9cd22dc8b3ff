"""The limits interceptor on a real grpc.aio server: in-flight cap, size cap, deadlines,
unparsable messages. Handlers block on events, so every outcome is decided by counts alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from banditroute.service.api.limits import (
    TRANSPORT_MAX_BYTES,
    LimitsInterceptor,
    check_deadline,
    request_limit_bytes,
    server_options,
    time_remaining,
)
from banditroute.v1 import router_pb2, router_pb2_grpc

CAP = 3


class _Router(router_pb2_grpc.RouterServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.remaining: list[float | None] = []

    async def Route(self, request: Any, context: Any) -> router_pb2.RouteResponse:
        self.entered += 1
        self.remaining.append(time_remaining())
        if request.prompt == "block":
            await self.release.wait()
        if request.prompt == "needs a minute":
            check_deadline(60.0, "the slow step")
        return router_pb2.RouteResponse(model="m")


Scenario = Callable[[grpc.aio.Channel, _Router, LimitsInterceptor], Awaitable[None]]


def _run(scenario: Scenario, **options: Any) -> None:
    async def main() -> None:
        limits = LimitsInterceptor(
            CAP, max_message_bytes=request_limit_bytes(**options) if options else None
        )
        server = grpc.aio.server(
            interceptors=[limits], options=server_options(**options) if options else None
        )
        router = _Router()
        router_pb2_grpc.add_RouterServicer_to_server(router, server)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await scenario(channel, router, limits)
        finally:
            await server.stop(None)

    asyncio.run(main())


async def _code(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_calls_over_the_cap_are_refused_and_capacity_returns() -> None:
    async def scenario(channel: Any, router: _Router, limits: LimitsInterceptor) -> None:
        stub = router_pb2_grpc.RouterStub(channel)
        blocked = [
            asyncio.ensure_future(_code(stub.Route(router_pb2.RouteRequest(prompt="block"))))
            for _ in range(CAP)
        ]
        while router.entered < CAP:
            await asyncio.sleep(0.01)
        extra = [await _code(stub.Route(router_pb2.RouteRequest(prompt="x"))) for _ in range(5)]
        assert extra == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 5
        assert router.entered == CAP, "a refused call reached the servicer"
        # Health checks are exempt: an overloaded server is still alive.
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        router.release.set()
        assert await asyncio.gather(*blocked) == [grpc.StatusCode.OK] * CAP
        assert limits.in_flight == 0 and limits.rejected == 5
        after = [await _code(stub.Route(router_pb2.RouteRequest(prompt="x"))) for _ in range(5)]
        assert after == [grpc.StatusCode.OK] * 5

    _run(scenario)


def test_message_over_the_size_limit_is_invalid_argument_naming_the_limit() -> None:
    async def scenario(channel: Any, router: _Router, limits: LimitsInterceptor) -> None:
        stub = router_pb2_grpc.RouterStub(channel)
        assert await _code(stub.Route(router_pb2.RouteRequest(prompt="a" * 1500))) == (
            grpc.StatusCode.OK
        )
        big = router_pb2.RouteRequest(prompt="a" * 5000)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Route(big)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "2000 bytes" in (info.value.details() or "")
        assert router.entered == 1

    _run(scenario, max_prompt_bytes=1000, overhead_bytes=1000)


def test_message_over_the_transport_cap_is_still_refused_by_grpc() -> None:
    async def scenario(channel: Any, router: _Router, limits: LimitsInterceptor) -> None:
        stub = router_pb2_grpc.RouterStub(channel)
        huge = router_pb2.RouteRequest(prompt="a" * (TRANSPORT_MAX_BYTES + 10))
        assert await _code(stub.Route(huge)) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert router.entered == 0

    _run(scenario, max_prompt_bytes=1000, overhead_bytes=1000)


def test_deadline_is_published_and_checked_before_slow_work() -> None:
    async def scenario(channel: Any, router: _Router, limits: LimitsInterceptor) -> None:
        stub = router_pb2_grpc.RouterStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Route(router_pb2.RouteRequest(prompt="needs a minute"), timeout=30)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "the slow step" in (info.value.details() or "")
        remaining = router.remaining[-1]
        assert remaining is not None and 0 < remaining <= 31  # grpc adds a little slack
        # Without a client deadline there is nothing to miss.
        await stub.Route(router_pb2.RouteRequest(prompt="needs a minute"))
        assert router.remaining[-1] is None

    _run(scenario)


@pytest.mark.parametrize(
    "payload",
    [b"\x0a\x02\xff\xfe", b"\x22\x01\x80", b"\xff\xff\xff\xff", b"\x0a\x10short"],
    ids=["bad-utf8-prompt", "bad-utf8-tenant", "garbage", "truncated"],
)
def test_unparsable_message_is_invalid_argument_not_unknown(payload: bytes) -> None:
    async def scenario(channel: Any, router: _Router, limits: LimitsInterceptor) -> None:
        call = channel.unary_unary("/banditroute.v1.Router/Route")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(payload)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert router.entered == 0
        assert limits.in_flight == 0

    _run(scenario)


@pytest.mark.parametrize(
    "request_",
    [
        router_pb2.RouteRequest(prompt="a\x00b"),
        router_pb2.RouteRequest(prompt="ok", categorical_context={"k": "v\x00"}),
        router_pb2.RouteRequest(prompt="ok", numeric_context={"k\x00": 1.0}),
        router_pb2.RouteRequest(prompt="ok", candidates=["m", "n\x00"]),
    ],
    ids=["prompt", "map-value", "map-key", "repeated"],
)
def test_nul_character_in_any_string_is_invalid_argument(request_: Any) -> None:
    async def scenario(channel: Any, router: _Router, limits: LimitsInterceptor) -> None:
        stub = router_pb2_grpc.RouterStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Route(request_)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "NUL" in (info.value.details() or "")
        assert router.entered == 0

    _run(scenario)
