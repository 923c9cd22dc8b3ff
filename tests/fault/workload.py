"""Client-side load for fault scenarios: many decisions, then a stream of outcomes whose
acknowledgements are recorded one by one, so a crash can be checked against them.

Used by the fault tests and by ``benchmarks/faults.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from banditroute.v1 import router_pb2, router_pb2_grpc

__all__ = [
    "OutcomeStream",
    "kill_at_ack",
    "make_decisions",
    "outcome_for",
    "resend_unacknowledged",
    "retry_until_recorded",
    "stream_until_killed",
]


def kill_at_ack(pid: int, threshold: int) -> tuple[Callable[[int], None], list[int]]:
    """An acknowledgement hook that SIGKILLs ``pid`` at the ``threshold``-th ack, and the list
    it appends that ack's count to (once) when it fires."""
    fired: list[int] = []

    def on_ack(count: int) -> None:
        if count >= threshold and not fired:
            fired.append(count)
            os.kill(pid, signal.SIGKILL)

    return on_ack, fired


def outcome_for(decision_id: str, index: int) -> router_pb2.RecordOutcomeRequest:
    """A deterministic outcome for the ``index``-th decision (values checkable in the DB)."""
    return router_pb2.RecordOutcomeRequest(
        decision_id=decision_id,
        quality=(index % 101) / 100.0,
        success=index % 3 != 0,
        input_tokens=100 + index % 50,
        output_tokens=20 + index % 30,
        latency_ms=float(50 + index % 200),
    )


async def make_decisions(
    address: str, count: int, *, concurrency: int = 32, prefix: str = "fault", route: str = ""
) -> list[str]:
    """Route ``count`` distinct prompts and return the decision ids in prompt order."""
    ids: list[str] = [""] * count
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                request = router_pb2.RouteRequest(
                    prompt=f"{prefix} prompt number {i} about topic {i % 17}", route=route
                )
                reply = await stub.Route(request, timeout=60)
                ids[i] = reply.decision_id

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


@dataclass
class OutcomeStream:
    """Sends outcomes (batches through RecordOutcomes, every ``single_every``-th batch as
    single RecordOutcome calls) and records exactly which ones the server acknowledged.

    The stream stops at the first transport failure (the server died) or when ``stop`` is set.
    """

    address: str
    requests: Sequence[router_pb2.RecordOutcomeRequest]
    batch_size: int = 50
    concurrency: int = 4
    single_every: int = 5
    #: Called after each acknowledgement with the running count (e.g. to trigger a kill).
    on_ack: Callable[[int], None] | None = None
    acknowledged: dict[str, router_pb2.RecordOutcomeRequest] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def _ack(self, request: router_pb2.RecordOutcomeRequest) -> None:
        self.acknowledged[request.decision_id] = request
        if self.on_ack is not None:
            self.on_ack(len(self.acknowledged))

    def _fail(self, code: grpc.StatusCode) -> None:
        self.failures[code.name] = self.failures.get(code.name, 0) + 1

    async def run(self) -> None:
        batches = [
            list(self.requests[i : i + self.batch_size])
            for i in range(0, len(self.requests), self.batch_size)
        ]
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            queue: asyncio.Queue[tuple[int, list[router_pb2.RecordOutcomeRequest]]]
            queue = asyncio.Queue()
            for item in enumerate(batches):
                queue.put_nowait(item)

            async def single(request: router_pb2.RecordOutcomeRequest) -> None:
                try:
                    await stub.RecordOutcome(request, timeout=60)
                except grpc.aio.AioRpcError as exc:
                    self._fail(exc.code())
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        self.stop.set()
                    return
                self._ack(request)

            async def worker() -> None:
                while not queue.empty() and not self.stop.is_set():
                    number, batch = queue.get_nowait()
                    if number % self.single_every == 0:
                        await asyncio.gather(*(single(r) for r in batch))
                        continue
                    try:
                        reply = await stub.RecordOutcomes(
                            router_pb2.RecordOutcomesRequest(outcomes=batch), timeout=60
                        )
                    except grpc.aio.AioRpcError as exc:
                        self._fail(exc.code())
                        if exc.code() == grpc.StatusCode.UNAVAILABLE:
                            self.stop.set()
                        continue
                    for request, result in zip(batch, reply.results, strict=True):
                        if result.code == 0:
                            self._ack(request)
                        else:
                            self._fail(_STATUS_BY_NUMBER.get(result.code, grpc.StatusCode.UNKNOWN))

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))


_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


async def retry_until_recorded(
    address: str,
    requests: Sequence[router_pb2.RecordOutcomeRequest],
    *,
    attempts: int = 200,
    pause_s: float = 0.1,
) -> dict[str, bool]:
    """Record every request, retrying UNAVAILABLE/RESOURCE_EXHAUSTED as a client would.

    Returns ``decision_id -> duplicate`` (True when the server had already committed it).
    """
    out: dict[str, bool] = {}
    retryable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        for start in range(0, len(requests), 200):
            chunk = list(requests[start : start + 200])
            for attempt in range(attempts):
                try:
                    reply = await stub.RecordOutcomes(
                        router_pb2.RecordOutcomesRequest(outcomes=chunk), timeout=60
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in retryable or attempt == attempts - 1:
                        raise
                    await asyncio.sleep(pause_s)
                    continue
                pending = []
                for request, result in zip(chunk, reply.results, strict=True):
                    if result.code == 0:
                        out[request.decision_id] = result.duplicate
                    elif _STATUS_BY_NUMBER.get(result.code) in retryable:
                        pending.append(request)
                    else:
                        raise AssertionError(f"outcome refused: {result.code} {result.message}")
                if not pending:
                    break
                chunk = pending
                await asyncio.sleep(pause_s)
            else:
                raise AssertionError("outcomes still unrecorded after every retry")
    return out


def resend_unacknowledged(
    env: dict[str, str],
    requests: Sequence[router_pb2.RecordOutcomeRequest],
    acknowledged: Container[str],
) -> None:
    """Start a server on the embedded database (``env``) and record, retrying, every request
    whose decision is not in ``acknowledged``; stop it again."""
    from tests.helpers import spawn_server

    server = spawn_server("", env=env)
    try:
        rest = [r for r in requests if r.decision_id not in acknowledged]
        asyncio.run(retry_until_recorded(server.address, rest))
    finally:
        server.stop()


def stream_until_killed(
    address: str, pid: int, decisions: int, kill_after: int, **options: Any
) -> tuple[list[router_pb2.RecordOutcomeRequest], OutcomeStream, list[int]]:
    """Make ``decisions`` decisions on ``address`` and stream one outcome each
    (:func:`outcome_for`) while ``pid`` is SIGKILLed at the ``kill_after``-th acknowledgement.

    Returns the requests, the finished :class:`OutcomeStream` (``options`` are its keyword
    arguments) and the list :func:`kill_at_ack` fills when it fired.
    """
    ids = asyncio.run(make_decisions(address, decisions))
    requests = [outcome_for(did, i) for i, did in enumerate(ids)]
    on_ack, fired = kill_at_ack(pid, kill_after)
    stream = OutcomeStream(address, requests, on_ack=on_ack, **options)
    asyncio.run(stream.run())
    return requests, stream, fired
