"""The group-commit writer: the only way decisions, outcomes and feedback enter the event log.

Callers ``await`` a write (or, for Route's decisions, take its future from
:meth:`GroupCommitWriter.submit_decision` without waiting); a background task gathers the writes
of the last ``flush_ms`` milliseconds (or ``batch_max_rows`` of them) and commits them in ONE
transaction. A write somebody waits for does not wait for others when the writer has been idle
for ``flush_ms`` since its last commit: it is committed at once (with whatever is queued), so
an outcome on a quiet server is acknowledged in about one commit, not a window plus a commit.
Under load the writer still commits at most once per ``flush_ms`` after the previous commit
ended, so batches are as large as before. Queued decisions nobody waits for
(:meth:`~GroupCommitWriter.submit_decision`) always wait the window for others to join them.
The steps of a transaction:

1. when the batch holds outcomes or feedback, ``pg_advisory_xact_lock(EVENT_LOG_LOCK_KEY)``,
   held until commit, so their event ids become visible in id order across writer processes
   (see :mod:`banditroute.service.storage.models.event_log`; decisions alone take no lock);
2. decisions: their ``(tenant, request_id)`` idempotency keys, then the rows (COPY);
3. outcomes and feedback: checked in the same transaction against their decision (it must
   exist and, when the caller names a tenant, belong to it) and against rows already stored
   (an identical repeat is a duplicate, a different one a conflict), then inserted (COPY);
4. ``pg_notify('banditroute_events', <largest event id>)`` when the batch holds outcomes or
   feedback, so followers wake at once (a decision alone teaches no policy).

This module is the queue, the batching and the reconnect loop; the transaction is
:mod:`~banditroute.service.storage.batch_commit`, the checks of step 3
:mod:`~banditroute.service.storage.row_checks`, the rows :mod:`~banditroute.service.storage.rows`.

Each caller gets its result only after COMMIT returned: an acknowledged write is durable. When
the database is unreachable every waiting caller gets
:class:`~banditroute.service.errors.Unavailable` (nothing is dropped silently), new writes fail fast
while the writer reconnects with exponential backoff, and a full queue answers
:class:`~banditroute.service.errors.ResourceExhausted`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from banditroute.service.config import libpq_url
from banditroute.service.errors import ResourceExhausted, Unavailable
from banditroute.service.storage.batch_commit import (
    commit_batch,
    commit_plain_decisions,
    is_plain_decisions,
)
from banditroute.service.storage.row_checks import WriteResult, WriteStatus
from banditroute.service.storage.rows import (
    DECISION_COLUMNS,
    FEEDBACK_COLUMNS,
    FEEDBACK_REQUIRED,
    OUTCOME_COLUMNS,
    OUTCOME_REQUIRED,
    DecisionRow,
    checked_row,
)

__all__ = [
    "DECISION_COLUMNS",
    "FEEDBACK_COLUMNS",
    "OUTCOME_COLUMNS",
    "DecisionRow",
    "GroupCommitWriter",
    "WriteResult",
    "WriteStatus",
    "WriterLimits",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterLimits:
    """How :class:`GroupCommitWriter` batches, bounds its queue and waits on the database.

    The service sets the first four from its settings (``write_flush_ms``,
    ``write_batch_max_rows``, ``write_max_pending_rows``, ``db_connect_timeout_s``).
    """

    #: Longest a write waits for its batch to start, in milliseconds.
    flush_ms: float = 4.0
    #: Most rows per transaction.
    batch_max_rows: int = 1000
    #: Rows that may wait; beyond it writes raise ``ResourceExhausted``.
    max_pending_rows: int = 50_000
    #: Timeout of one connection attempt, in seconds.
    connect_timeout_s: float = 5.0
    #: A batch transaction taking longer is abandoned (callers get ``Unavailable``), in seconds.
    flush_timeout_s: float = 30.0
    #: First wait before reconnecting, doubled after each failed attempt up to ``backoff_max_s``.
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0


@dataclass(slots=True)
class _Item:
    kind: str  # "d" (row: DecisionRow), "o", "f" (row: dict)
    row: Any
    future: asyncio.Future[Any]
    waited: bool  # a caller awaits it (not a queued decision)


class GroupCommitWriter:
    """Asyncio group-commit writer on one raw psycopg 3 connection.

    Parameters
    ----------
    url
        PostgreSQL URL (any form; the driver suffix is dropped).
    limits
        Batching window and size, queue bound, timeouts and reconnect backoff
        (:class:`WriterLimits`; default: its defaults).
    on_batch, on_db_error
        Optional metric hooks: rows per committed batch; operation name of a database error.

    Examples
    --------
    >>> async def main(url, decision_row):  # doctest: +SKIP
    ...     async with GroupCommitWriter(url) as writer:
    ...         return await writer.write_decision(decision_row)
    """

    def __init__(
        self,
        url: str,
        limits: WriterLimits | None = None,
        *,
        on_batch: Callable[[int], None] | None = None,
        on_db_error: Callable[[str], None] | None = None,
    ) -> None:
        self._conninfo = libpq_url(url)
        self.limits = WriterLimits() if limits is None else limits
        self._flush_s = self.limits.flush_ms / 1000.0
        self._on_batch = on_batch
        self._on_db_error = on_db_error
        self._pending: collections.deque[_Item] = collections.deque()
        #: Decisions queued or being committed, by id: outcomes wait for them.
        self._unsettled: dict[Any, asyncio.Future[Any]] = {}
        self._has_rows = asyncio.Event()
        #: Set when the batch is full, a waited-for write arrives or the writer closes: the
        #: gatherer looks again.
        self._wake = asyncio.Event()
        #: Writes a caller awaits among the pending ones.
        self._waited = 0
        #: ``loop.time()`` when the last commit ended (``-inf``: none yet).
        self._last_flush_end = float("-inf")
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._healthy = False
        self._last_error = ""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> GroupCommitWriter:
        """Connect and start the flush task.

        Raises
        ------
        Unavailable
            When the database cannot be reached now (the writer does not start).
        """
        if self._task is not None:
            return self
        try:
            self._conn = await self._connect()
        except (OSError, psycopg.Error) as exc:
            raise Unavailable(f"cannot connect to the database: {_describe(exc)}") from exc
        self._healthy = True
        self._task = asyncio.create_task(self._run(), name="banditroute-group-commit")
        return self

    async def close(self) -> None:
        """Flush every pending write (graceful shutdown), then close the connection."""
        self._closing = True
        self._has_rows.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_pending(Unavailable("the writer is shut down"))
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> GroupCommitWriter:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def healthy(self) -> bool:
        """False while the database is unreachable (writes fail fast with Unavailable)."""
        return self._healthy

    @property
    def pending_rows(self) -> int:
        """Rows waiting for a commit."""
        return len(self._pending)

    # -- writes ----------------------------------------------------------------------------

    async def write_decision(self, row: DecisionRow | Mapping[str, Any]) -> int | None:
        """Write a decision (a :class:`~banditroute.service.storage.rows.DecisionRow`, or a
        mapping of its columns); return its event id once committed, or None when ``(tenant,
        request_id)`` already had a decision (nothing written; look the stored one up)."""
        result: int | None = await self._submit("d", DecisionRow.from_mapping(row))
        return result

    def submit_decision(self, row: DecisionRow | Mapping[str, Any]) -> asyncio.Future[int | None]:
        """Queue a decision and return at once the future of :meth:`write_decision`'s result.

        Raises ``Unavailable`` or ``ResourceExhausted`` now when the write cannot be queued.
        """
        (future,) = self._enqueue([("d", DecisionRow.from_mapping(row))], waited=False)
        return future

    async def settle(self, decision_ids: Iterable[Any] | None, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until those of ``decision_ids`` (None: all) queued in
        this writer are committed or failed; return at once when none is."""
        if decision_ids is None:
            decision_ids = list(self._unsettled)
        waiting = [f for d in decision_ids if (f := self._unsettled.get(d)) is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout_s)

    async def write_outcome(self, row: Mapping[str, Any]) -> WriteResult:
        """Write an outcome once committed; see :class:`WriteStatus` for what can happen.

        ``row`` has ``decision_id`` (UUID), ``decision_created_at``, ``tenant`` (``None`` = the
        caller's tenant is not checked), the :data:`OUTCOME_COLUMNS` and ``reward``.
        """
        result: WriteResult = await self._submit("o", checked_row(row, OUTCOME_REQUIRED))
        return result

    async def write_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Write many outcomes; all are queued at once (or none, on ResourceExhausted)."""
        futures = self._enqueue([("o", checked_row(r, OUTCOME_REQUIRED)) for r in rows])
        return list(await asyncio.gather(*futures))

    async def write_feedback(self, row: Mapping[str, Any]) -> WriteResult:
        """Write a piece of feedback once committed.

        ``row`` has ``decision_id``, ``decision_created_at``, ``tenant`` (or None),
        ``feedback_key`` (the client's feedback id, or one derived from the source) and the
        :data:`FEEDBACK_COLUMNS`.
        """
        result: WriteResult = await self._submit("f", checked_row(row, FEEDBACK_REQUIRED))
        return result

    async def _submit(self, kind: str, row: Any) -> Any:
        (future,) = self._enqueue([(kind, row)])
        return await future

    def _enqueue(
        self, items: Sequence[tuple[str, Any]], *, waited: bool = True
    ) -> list[asyncio.Future[Any]]:
        if self._task is None or self._closing:
            raise Unavailable("the writer is not running")
        if not self._healthy:
            raise Unavailable(f"the database is unreachable: {self._last_error}")
        if len(self._pending) + len(items) > self.limits.max_pending_rows:
            raise ResourceExhausted(
                f"{len(self._pending)} writes are waiting for the database; retry with backoff"
            )
        loop = asyncio.get_running_loop()
        futures = []
        for kind, row in items:
            future: asyncio.Future[Any] = loop.create_future()
            self._pending.append(_Item(kind, row, future, waited))
            futures.append(future)
            if kind == "d":
                self._unsettled[row.decision_id] = future
        self._has_rows.set()
        if waited:
            self._waited += len(items)
        if waited or len(self._pending) >= self.limits.batch_max_rows:
            self._wake.set()
        return futures

    # -- background task -------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo,
            connect_timeout=max(1, round(self.limits.connect_timeout_s)),
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            application_name="banditroute-writer",
            autocommit=True,  # transactions are explicit: BEGIN travels with the batch's queries
        )

    async def _run(self) -> None:
        limits = self.limits
        backoff = limits.backoff_initial_s
        while True:
            if self._conn is None or self._conn.closed:
                self._conn = None
                try:
                    self._conn = await self._connect()
                except (OSError, psycopg.Error) as exc:
                    self._mark_down(exc, "connect")
                    if self._closing:
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, limits.backoff_max_s)
                    continue
                if not self._healthy:
                    log.info("database reachable again; writes resume")
                self._healthy = True
                backoff = limits.backoff_initial_s
            if not self._pending:
                if self._closing:
                    return
                self._has_rows.clear()
                await self._has_rows.wait()
                continue
            await self._gather()
            batch = [
                self._pending.popleft()
                for _ in range(min(len(self._pending), limits.batch_max_rows))
            ]
            self._waited -= sum(item.waited for item in batch)
            if len(self._pending) < limits.batch_max_rows:
                self._wake.clear()
            await self._flush(batch)
            self._last_flush_end = asyncio.get_running_loop().time()

    async def _gather(self) -> None:
        """Wait up to ``flush_ms`` for more rows, unless the batch is full or we are closing.

        A waited-for write shortens the wait to ``flush_ms`` after the last commit ended
        (nothing at all on an idle writer); see the module docstring."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flush_s
        while not self._closing and len(self._pending) < self.limits.batch_max_rows:
            if self._waited:
                deadline = min(deadline, self._last_flush_end + self._flush_s)
            timeout = deadline - loop.time()
            if timeout <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return

    def _mark_down(self, exc: BaseException, op: str) -> None:
        self._last_error = _describe(exc)
        if self._healthy:
            log.warning("database unreachable (%s): %s", op, self._last_error)
        self._healthy = False
        if self._on_db_error is not None:
            self._on_db_error(op)
        self._fail_pending(Unavailable(f"the database is unreachable: {self._last_error}"))

    def _fail_pending(self, error: BaseException) -> None:
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(error)
            if item.kind == "d":
                self._unsettled.pop(item.row.decision_id, None)
        self._waited = 0
        self._wake.clear()

    async def _flush(self, batch: list[_Item]) -> None:
        try:
            await self._flush_batch(batch)
        finally:
            unsettled = self._unsettled
            for item in batch:
                if item.kind == "d":
                    unsettled.pop(item.row.decision_id, None)

    async def _flush_batch(self, batch: list[_Item]) -> None:
        conn = self._conn
        assert conn is not None
        started = time.perf_counter()
        try:
            items = [(item.kind, item.row) for item in batch]
            async with asyncio.timeout(self.limits.flush_timeout_s):
                if is_plain_decisions(items):
                    results = await commit_plain_decisions(conn, items)
                else:
                    results = await commit_batch(conn, items)
        except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError, OSError) as exc:
            error = Unavailable(f"the database is unreachable: {_describe(exc)}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            await self._drop_connection()
            self._mark_down(exc, "write")
            return
        except asyncio.CancelledError:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(Unavailable("the writer stopped"))
            await self._drop_connection()
            raise
        except Exception as exc:
            # A row the database (or a type adapter) rejects must not fail its batch mates:
            # the transaction was rolled back; retry the rows one by one.
            if self._on_db_error is not None:
                self._on_db_error("write")
            if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                await self._drop_connection()  # reconnect rather than reuse an unknown state
            if len(batch) == 1:
                log.error("database rejected a %s row: %s", batch[0].kind, _describe(exc))
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for item in batch:
                if self._conn is None:
                    with contextlib.suppress(OSError, psycopg.Error):
                        self._conn = await self._connect()
                if self._conn is not None:
                    await self._flush_batch([item])
                if self._conn is None:  # the connection died meanwhile: fail the rest
                    for rest in batch:
                        if not rest.future.done():
                            rest.future.set_exception(Unavailable("the database is unreachable"))
                    return
            return
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        log.debug("committed %d rows in %.1f ms", len(batch), (time.perf_counter() - started) * 1e3)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await conn.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
