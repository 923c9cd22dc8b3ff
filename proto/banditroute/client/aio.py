"""The asyncio client: :class:`AsyncRouter` (grpc.aio), the same API as :class:`Router`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc

from banditroute.client.calls import (
    CallResult,
    DecisionRef,
    Fallback,
    check_scorers,
    feedback_request,
    record_request,
    retry_request,
    route_request,
    score,
)
from banditroute.client.connection import ClientBase, Metadata
from banditroute.client.retry import RetryPolicy

__all__ = ["AsyncRouter"]

log = logging.getLogger("banditroute.client")
T = TypeVar("T")


class AsyncRetryingStub:
    """:class:`~banditroute.client.sync.RetryingStub` for grpc.aio: ``await
    stub.Method(request, timeout=None)``."""

    def __init__(
        self,
        stub: Any,
        metadata: Metadata,
        timeout: float | None,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        rpc = getattr(self._stub, method)

        async def invoke(request: Any, *, timeout: float | None = None) -> Any:
            deadline = self._timeout if timeout is None else timeout
            attempt = 1
            while True:
                try:
                    return await rpc(request, timeout=deadline, metadata=self._metadata)
                except grpc.RpcError as exc:
                    if not self._retry.should_retry(exc, attempt):
                        raise
                    await self._sleep(self._retry.backoff(attempt))
                    attempt += 1
                    request = retry_request(request)

        return invoke


class AsyncRouter(ClientBase):
    """An asyncio client of a banditroute server; open it inside a running event loop.

    The arguments are :class:`~banditroute.client.Router`'s; every method is a coroutine, and
    :meth:`call` awaits ``fn(model)``.

    Examples
    --------
    >>> import asyncio
    >>> from banditroute.client import AsyncRouter
    >>> async def ask(model: str) -> str:
    ...     return f"{model}: 4"                 # await the model's API here
    >>> async def main() -> str:
    ...     async with AsyncRouter(address) as router:
    ...         result = await router.call("What is 2 + 2?", ask, route="default")
    ...         return result.value == f"{result.model}: 4"
    >>> asyncio.run(main())
    True
    """

    _channels = grpc.aio
    _retrying_stub = AsyncRetryingStub
    channel: grpc.aio.Channel
    stub: AsyncRetryingStub
    admin: AsyncRetryingStub

    async def route(self, prompt: str, *, timeout: float | None = None, **fields: Any) -> Any:
        """:meth:`Router.route <banditroute.client.Router.route>`."""
        return await self.stub.Route(route_request(prompt, fields), timeout=timeout)

    async def record(
        self, decision_id: DecisionRef, *, timeout: float | None = None, **fields: Any
    ) -> Any:
        """:meth:`Router.record <banditroute.client.Router.record>`."""
        return await self.stub.RecordOutcome(record_request(decision_id, fields), timeout=timeout)

    async def feedback(
        self,
        decision_id: DecisionRef,
        rating: float,
        *,
        comment: str | None = None,
        source: str = "user",
        feedback_id: str = "",
        timeout: float | None = None,
    ) -> Any:
        """:meth:`Router.feedback <banditroute.client.Router.feedback>`."""
        request = feedback_request(decision_id, rating, comment, source, feedback_id)
        return await self.stub.SubmitFeedback(request, timeout=timeout)

    async def call(
        self,
        prompt: str,
        fn: Callable[[str], Awaitable[T]],
        *,
        quality: Callable[[T], float] | None = None,
        usage: Callable[[T], Mapping[str, Any]] | None = None,
        timeout: float | None = None,
        **route_fields: Any,
    ) -> CallResult[T]:
        """:meth:`Router.call <banditroute.client.Router.call>`, awaiting ``fn(model)``.

        Cancellation is not a failure: it propagates without trying a fallback or recording.
        """
        check_scorers(quality, usage)
        tries = Fallback(await self.route(prompt, timeout=timeout, **route_fields))
        for model in tries.models():
            started = time.perf_counter()
            try:
                value = await fn(model)
            except Exception as exc:
                tries.failed(model, started, exc)
                last_error: Exception = exc
                continue
            tries.answered(model, started)
            scored = score(value, quality, usage) if tries.chosen_answered else (None, None)
            outcome = await self._record_quietly(tries.outcome_request(*scored), timeout)
            return tries.result(value, outcome)
        outcome = await self._record_quietly(tries.outcome_request(), timeout)
        raise tries.failure(outcome) from last_error

    async def _record_quietly(self, request: Any, timeout: float | None) -> Any:
        try:
            return await self.stub.RecordOutcome(request, timeout=timeout)
        except grpc.RpcError as exc:
            log.warning("could not record the outcome of decision %s: %s", request.decision_id, exc)
            return None

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()

    async def __aenter__(self) -> AsyncRouter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
