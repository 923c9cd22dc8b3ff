"""Route's decision store: decisions logged off the request path, and a bounded outage buffer.

**Off the request path** (the default, ``durable_decisions = false``): Route hands its decision
row to the group-commit writer and answers at once; the row commits with the next group commit
(``write_flush_ms``). A kill -9 loses the decisions answered in the last window and the batch
being committed, and never more than ``max_unsettled`` (``write_batch_max_rows``): when that many
decisions wait for their commit, Route waits for its own, as in durable mode. An outcome for a
decision not committed yet waits for it (:meth:`SqlStore.load_decisions`). A Route with a
``request_id`` always waits for its commit (another process may hold the same id). With
``durable = True`` every Route answers only after its decision committed.

**Outage**: when the write fails with :class:`~banditroute.service.errors.Unavailable` (the database
is down), before or after Route answered, :class:`BufferedDecisionStore` keeps the row in memory
instead and Route answers from the in-memory policies as usual. While rows are held, later
decisions queue behind them (so the log keeps their order and no call waits on a dead database); a
background task retries with backoff and writes them, in order, once the database is back.

* Rows written from the buffer carry ``logged = false``: they were answered before they were
  durable, and their ``event_id`` is later than their ``created_at`` suggests.
* The buffer is bounded (``capacity`` rows, setting ``outage_buffer_decisions``). When it is
  full, Route still answers but the decision is never stored: it is counted in
  ``banditroute_decisions_dropped_total`` and an outcome for it will get ``NOT_FOUND``.
* An outcome or feedback for a decision still in the buffer gets ``UNAVAILABLE`` (retry), never
  ``NOT_FOUND``: see :meth:`BufferedDecisionStore.holds`.
* A repeated ``request_id`` is answered from the buffer; during an outage another process
  cannot be asked, so two processes may each decide once for the same id (the later write
  loses and is counted as dropped).

Memory is bounded by ``capacity`` rows (a row is ~1 KB plus the features: 64 floats by default).

**Recent decisions**: the store also remembers what the outcome path needs of the last
``recent_capacity`` decisions it queued or wrote (:meth:`BufferedDecisionStore.recent`: creation
time, tenant, model, policy, estimated cost, route, variant; about 300 bytes each), so an outcome
for a decision this process answered recently is joined without reading the decision back
(:class:`~banditroute.service.core.outcomes.OutcomeCore`; the write transaction still checks it).

Examples
--------
>>> import asyncio
>>> from banditroute.service.errors import Unavailable
>>> class Down:
...     async def write_decision(self, row): raise Unavailable("database down")
...     async def find_request(self, tenant, request_id): raise Unavailable("database down")
>>> async def demo():
...     store = BufferedDecisionStore(Down(), capacity=1, retry_interval_s=60)
...     await store.write_decision({"decision_id": "d1", "tenant": "", "request_id": "r"})
...     await store.write_decision({"decision_id": "d2", "tenant": "", "request_id": ""})
...     replay = await store.find_request("", "r")
...     stats = (store.held, store.dropped, store.holds("d1"), replay["decision_id"])
...     await store.close()
...     return stats
>>> asyncio.run(demo())
(1, 1, True, 'd1')
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from banditroute.service.errors import Unavailable
from banditroute.service.storage.rows import DecisionRow

__all__ = ["BufferedDecisionStore", "DecisionWriter"]

log = logging.getLogger(__name__)

#: Rows written concurrently per flush step (they share group commits).
FLUSH_CHUNK = 256


class DecisionWriter(Protocol):
    """The durable decision store being wrapped (the group-commit writer's decision side)."""

    async def write_decision(self, row: Mapping[str, Any]) -> int | None:
        """Write one row; its event id once committed, None for a request-id conflict."""
        ...

    async def find_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The stored decision row of ``(tenant, request_id)``, or None."""
        ...

    def submit_decision(self, row: Mapping[str, Any]) -> asyncio.Future[int | None]:
        """Queue one row; the future of its event id (raises ``Unavailable`` at once when the
        database is known to be down)."""
        ...


class BufferedDecisionStore:
    """A :class:`DecisionWriter` that holds decisions in memory while the database is down.

    Parameters
    ----------
    inner
        The durable store.
    capacity
        Most decisions held at once; beyond it decisions are answered but dropped.
    retry_interval_s
        First pause before writing held rows again; doubles up to ``max_retry_interval_s``.
    registry
        Prometheus registry for the buffer's metrics (a private one when None).
    durable
        Answer only after the decision committed (else: see the module docstring).
    max_unsettled
        Most decisions answered and not yet committed; beyond it Route waits for the commit.
    recent_capacity
        Decisions remembered for :meth:`recent` (0: none); the oldest are forgotten first.
    """

    def __init__(
        self,
        inner: DecisionWriter,
        *,
        capacity: int = 10_000,
        retry_interval_s: float = 0.2,
        max_retry_interval_s: float = 1.0,
        registry: CollectorRegistry | None = None,
        durable: bool = True,
        max_unsettled: int = 1000,
        recent_capacity: int = 0,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        if recent_capacity < 0:
            raise ValueError(f"recent_capacity must be >= 0, got {recent_capacity}")
        #: Two generations of recent decisions (lookups read both; when the young one holds
        #: half the capacity it becomes the old one and the old one is dropped): O(1) per
        #: decision, no per-entry bookkeeping.
        self._recent_half = (recent_capacity + 1) // 2
        self._recent_young: dict[int, tuple[Any, ...]] = {}
        self._recent_old: dict[int, tuple[Any, ...]] = {}
        self.inner = inner
        self.durable = durable
        self.max_unsettled = max_unsettled
        #: Decisions answered whose commit is still running.
        self.unsettled = 0
        self.capacity = capacity
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self._rows: OrderedDict[Any, dict[str, Any]] = OrderedDict()
        self._by_request: dict[tuple[str, str], dict[str, Any]] = {}
        self._flusher: asyncio.Task[None] | None = None
        #: Decisions answered but never stored (buffer full, or lost a request-id race).
        self.dropped = 0
        #: Decisions that went through the buffer and were written late.
        self.flushed = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._held_gauge = Gauge(
            "banditroute_decision_buffer_rows",
            "Decisions answered during a database outage and not yet written",
            registry=registry,
        )
        self._buffered_total = Counter(
            "banditroute_decisions_buffered",
            "Decisions held in the outage buffer",
            registry=registry,
        )
        self._dropped_total = Counter(
            "banditroute_decisions_dropped",
            "Decisions answered but never stored (outage buffer full)",
            registry=registry,
        )

    # ------------------------------------------------------------------ DecisionWriter
    async def write_decision(self, row: Mapping[str, Any], *, fresh: bool = False) -> int | None:
        """Write ``row``; its event id once committed, or 0 when it is answered before (not
        durable yet: queued off the request path, or held during an outage).

        A row with a request id waits for its commit, which settles a race with another
        process over the id (None: the other one won), unless the id is ``fresh`` (never sent
        before, so there is no race to settle)."""
        if self._rows:
            return self._hold(row)
        if self.durable or (row.get("request_id") and not fresh):
            try:
                event_id = await self.inner.write_decision(row)
            except Unavailable:
                return self._hold(row)
            if event_id is not None:
                self._remember(row)
            return event_id
        try:
            future = self.inner.submit_decision(row)
        except Unavailable:
            return self._hold(row)
        self._remember(row)
        self.unsettled += 1
        future.add_done_callback(functools.partial(self._settled, row))
        if self.unsettled > self.max_unsettled:  # the writer is behind: bound what a crash loses
            await asyncio.wait([future])
        return 0

    # ------------------------------------------------------------------ recent decisions
    def recent(self, decision_id: Any) -> tuple[Any, ...] | None:
        """``(created_at, tenant, model, policy_name, policy_version, estimated_cost_usd, route,
        variant)`` of a decision (UUID) this store queued or wrote recently, else None.

        The decision may not be committed yet (it then commits before, or with, anything
        queued after it). Nothing here says whether it has an outcome or feedback already.
        """
        key = decision_id.int  # an int hashes in C; a UUID's __hash__ is Python code
        found = self._recent_young.get(key)
        return found if found is not None else self._recent_old.get(key)

    def forget_recent(self, decision_id: Any) -> None:
        """Stop answering :meth:`recent` for ``decision_id`` (it has an outcome or feedback now,
        or it was not stored)."""
        key = getattr(decision_id, "int", None)  # a UUID (anything else was never remembered)
        if key is not None:
            self._recent_young.pop(key, None)
            self._recent_old.pop(key, None)

    def _remember(self, row: Mapping[str, Any]) -> None:
        if not self._recent_half or type(row) is not DecisionRow:
            return
        if type(row.decision_id) is not uuid.UUID:
            return
        young = self._recent_young
        young[row.decision_id.int] = (
            row.created_at,
            row.tenant,
            row.model,
            row.policy_name,
            row.policy_version,
            row.estimated_cost_usd,
            row.route,
            row.variant,
        )
        if len(young) >= self._recent_half:
            self._recent_old = young
            self._recent_young = {}

    def _settled(self, row: Mapping[str, Any], future: asyncio.Future[int | None]) -> None:
        """A decision answered before its commit: committed, or held when the database is down."""
        self.unsettled -= 1
        error = None if future.cancelled() else future.exception()
        if error is None:
            if future.cancelled() or future.result() is not None:
                return
            # None: a retry of its (fresh) request id, through another process, was stored
            # first; the client uses that answer.
            if type(row) is DecisionRow:
                self.forget_recent(row.decision_id)
            self._drop("lost a request-id race")
            return
        if type(row) is DecisionRow:
            self.forget_recent(row.decision_id)
        if isinstance(error, Unavailable):
            self._hold(row)
        else:
            log.error("decision %s not stored: %s", row["decision_id"], error)
            self._drop(f"write failed: {type(error).__name__}")

    async def find_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The decision of ``(tenant, request_id)`` from the buffer or the database.

        While the database is unreachable only the buffer can answer.
        """
        held = self.held_request(tenant, request_id)
        if held is not None:
            return held
        try:
            return await self.inner.find_request(tenant, request_id)
        except Unavailable:
            return None

    def held_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The decision of ``(tenant, request_id)`` waiting in the outage buffer, or None."""
        return self._by_request.get((tenant, request_id))

    # ------------------------------------------------------------------ outage state
    @property
    def held(self) -> int:
        """Decisions waiting in the buffer."""
        return len(self._rows)

    def holds(self, decision_id: Any) -> bool:
        """True when ``decision_id`` (UUID or its text) waits in the buffer, not yet stored."""
        if not self._rows:
            return False
        return decision_id in self._rows or str(decision_id) in self._rows

    async def close(self) -> None:
        """Stop the retry task (held rows stay in memory; call :meth:`flush` first to write)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    async def flush(self) -> bool:
        """Try once to write every held row in order; True when the buffer is empty."""
        while self._rows:
            chunk = list(self._rows.values())[:FLUSH_CHUNK]
            results = await asyncio.gather(
                *(self.inner.write_decision(row) for row in chunk), return_exceptions=True
            )
            failed = False
            for row, result in zip(chunk, results, strict=True):
                if isinstance(result, Unavailable):
                    failed = True
                    continue
                self._forget(row)
                if isinstance(result, BaseException):
                    self._drop(f"write failed: {type(result).__name__}")
                elif result is None:
                    self._drop("request_id stored first by another process")
                else:
                    self.flushed += 1
            if failed:
                return False
        return True

    # ------------------------------------------------------------------ internals
    def _key(self, row: Mapping[str, Any]) -> Any:
        return str(row["decision_id"])

    def _hold(self, row: Mapping[str, Any]) -> int:
        if len(self._rows) >= self.capacity:
            self._drop("outage buffer full")
            return 0
        held = {**row, "logged": False}
        if not self._rows:
            log.warning("database unavailable: Route answers from memory, decisions buffered")
        self._rows[self._key(held)] = held
        request_id = held.get("request_id") or ""
        if request_id:
            self._by_request[(held.get("tenant") or "", request_id)] = held
        self._buffered_total.inc()
        self._held_gauge.set(len(self._rows))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._retry_loop())
        return 0

    def _forget(self, row: dict[str, Any]) -> None:
        self._rows.pop(self._key(row), None)
        request_id = row.get("request_id") or ""
        if request_id:
            self._by_request.pop((row.get("tenant") or "", request_id), None)
        self._held_gauge.set(len(self._rows))

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self._dropped_total.inc()
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("decision answered but not stored (%s); %d so far", reason, self.dropped)

    async def _retry_loop(self) -> None:
        delay = self.retry_interval_s
        while self._rows:
            await asyncio.sleep(delay)
            try:
                if await self.flush():
                    log.warning("database back: outage buffer written (%d late)", self.flushed)
                    return
            except Exception:  # never let the retry task die with rows still held
                log.exception("writing the outage buffer failed; retrying")
            delay = min(delay * 2, self.max_retry_interval_s)
