"""The group-commit writer: the only way decisions, outcomes and feedback enter the event log.

Callers ``await`` a write; a background task gathers the writes of the last ``flush_ms``
milliseconds (or ``batch_max_rows`` of them) and commits them in ONE transaction:

1. ``pg_advisory_xact_lock(EVENT_LOG_LOCK_KEY)``, held until commit, so event ids of all writer
   processes become visible in id order (see :mod:`banditroute.service.storage.models.event_log`);
2. decisions: their ``(tenant, request_id)`` idempotency keys, then the rows (COPY);
3. outcomes and feedback: checked in the same transaction against their decision (it must
   exist and, when the caller names a tenant, belong to it) and against rows already stored
   (an identical repeat is a duplicate, a different one a conflict), then inserted (COPY);
4. ``pg_notify('banditroute_events', <largest event id>)`` when the batch holds outcomes or
   feedback, so followers wake at once (a decision alone teaches no policy).

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
import enum
import json
import logging
import math
import operator
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from banditroute.service.config import libpq_url
from banditroute.service.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from banditroute.service.storage.models.event_log import EVENT_LOG_LOCK_KEY, EVENTS_CHANNEL

__all__ = [
    "DECISION_COLUMNS",
    "FEEDBACK_COLUMNS",
    "OUTCOME_COLUMNS",
    "GroupCommitWriter",
    "WriteResult",
    "WriteStatus",
]

log = logging.getLogger(__name__)

#: Columns of a decision row (``event_id`` is assigned by the writer).
DECISION_COLUMNS = (
    "decision_id",
    "created_at",
    "tenant",
    "route",
    "request_id",
    "unit_id",
    "policy_name",
    "policy_version",
    "experiment",
    "variant",
    "bucket",
    "model",
    "propensity",
    "candidates",
    "scores",
    "probabilities",
    "estimated_cost_usd",
    "features",
    "numeric_context",
    "categorical_context",
    "prompt_hash",
    "prompt",
    "shadow",
    "logged",
)
_DECISION_DEFAULTS: dict[str, Any] = {
    "tenant": "",
    "request_id": "",
    "unit_id": "",
    "experiment": "",
    "variant": "",
    "bucket": None,
    "numeric_context": {},
    "categorical_context": {},
    "prompt": None,
    "shadow": None,
    "logged": True,
}
_JSON_COLUMNS = frozenset({"numeric_context", "categorical_context", "shadow"})

#: Fields of an outcome row that make two outcomes "identical".
OUTCOME_COLUMNS = (
    "quality",
    "success",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "error",
)
#: Fields of a feedback row that make two pieces of feedback "identical".
FEEDBACK_COLUMNS = ("rating", "comment", "source")


class WriteStatus(enum.Enum):
    """What happened to one outcome or feedback row."""

    INSERTED = "inserted"
    #: An identical row was already stored (result carries its event id); nothing written.
    DUPLICATE = "duplicate"
    #: A different row was already stored for the same key; nothing written.
    CONFLICT = "conflict"
    #: No decision with this id exists.
    UNKNOWN_DECISION = "unknown_decision"
    #: The decision belongs to another tenant than the caller's.
    WRONG_TENANT = "wrong_tenant"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Result of one outcome or feedback write.

    ``event_id`` is the new row's id (INSERTED) or the stored row's (DUPLICATE, CONFLICT),
    else 0. ``stored`` holds the stored row's compared fields plus ``reward`` for outcomes
    (DUPLICATE, CONFLICT), else None. ``tenant`` is the decision's tenant when it exists.
    """

    status: WriteStatus
    event_id: int = 0
    stored: Mapping[str, Any] | None = None
    tenant: str | None = None

    @property
    def ok(self) -> bool:
        """True for INSERTED and DUPLICATE (the client's write is in the log)."""
        return self.status in (WriteStatus.INSERTED, WriteStatus.DUPLICATE)

    def raise_for_status(self, what: str = "outcome") -> WriteResult:
        """Return self when :attr:`ok`, else raise the matching domain error."""
        if self.status is WriteStatus.UNKNOWN_DECISION or self.status is WriteStatus.WRONG_TENANT:
            # another tenant's decision is reported like a missing one: existence is not leaked
            if self.status is WriteStatus.WRONG_TENANT:
                raise PermissionDenied(f"the decision of this {what} belongs to another tenant")
            raise NotFound(f"unknown decision_id for this {what}")
        if self.status is WriteStatus.CONFLICT:
            raise AlreadyExists(f"a different {what} was already recorded for this decision")
        return self


@dataclass(slots=True)
class _Item:
    kind: str  # "d", "o", "f"
    row: dict[str, Any]
    future: asyncio.Future[Any]


class GroupCommitWriter:
    """Asyncio group-commit writer on one raw psycopg 3 connection.

    Parameters
    ----------
    url
        PostgreSQL URL (any form; the driver suffix is dropped).
    flush_ms
        Longest a write waits for its batch to start.
    batch_max_rows
        Most rows per transaction.
    max_pending_rows
        Rows that may wait; beyond it writes raise ``ResourceExhausted``.
    connect_timeout_s
        Timeout of one connection attempt.
    flush_timeout_s
        A batch transaction taking longer is abandoned (callers get ``Unavailable``).
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
        *,
        flush_ms: float = 4.0,
        batch_max_rows: int = 1000,
        max_pending_rows: int = 50_000,
        connect_timeout_s: float = 5.0,
        flush_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        on_batch: Callable[[int], None] | None = None,
        on_db_error: Callable[[str], None] | None = None,
    ) -> None:
        self._conninfo = libpq_url(url)
        self.flush_s = flush_ms / 1000.0
        self.batch_max_rows = batch_max_rows
        self.max_pending_rows = max_pending_rows
        self.connect_timeout_s = connect_timeout_s
        self.flush_timeout_s = flush_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._on_batch = on_batch
        self._on_db_error = on_db_error
        self._pending: collections.deque[_Item] = collections.deque()
        self._has_rows = asyncio.Event()
        self._full = asyncio.Event()
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
        self._full.set()
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

    async def write_decision(self, row: Mapping[str, Any]) -> int | None:
        """Write a decision (columns :data:`DECISION_COLUMNS`); return its event id once
        committed, or None when ``(tenant, request_id)`` already had a decision (nothing
        written; look the stored one up)."""
        result: int | None = await self._submit("d", _decision_row(row))
        return result

    async def write_outcome(self, row: Mapping[str, Any]) -> WriteResult:
        """Write an outcome once committed; see :class:`WriteStatus` for what can happen.

        ``row`` has ``decision_id`` (UUID), ``decision_created_at``, ``tenant`` (``None`` = the
        caller's tenant is not checked), the :data:`OUTCOME_COLUMNS` and ``reward``.
        """
        result: WriteResult = await self._submit("o", _checked(row, _OUTCOME_REQUIRED))
        return result

    async def write_outcomes(self, rows: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        """Write many outcomes; all are queued at once (or none, on ResourceExhausted)."""
        futures = self._enqueue([("o", _checked(r, _OUTCOME_REQUIRED)) for r in rows])
        return list(await asyncio.gather(*futures))

    async def write_feedback(self, row: Mapping[str, Any]) -> WriteResult:
        """Write a piece of feedback once committed.

        ``row`` has ``decision_id``, ``decision_created_at``, ``tenant`` (or None),
        ``feedback_key`` (the client's feedback id, or one derived from the source) and the
        :data:`FEEDBACK_COLUMNS`.
        """
        result: WriteResult = await self._submit("f", _checked(row, _FEEDBACK_REQUIRED))
        return result

    async def _submit(self, kind: str, row: dict[str, Any]) -> Any:
        (future,) = self._enqueue([(kind, row)])
        return await future

    def _enqueue(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[asyncio.Future[Any]]:
        if self._task is None or self._closing:
            raise Unavailable("the writer is not running")
        if not self._healthy:
            raise Unavailable(f"the database is unreachable: {self._last_error}")
        if len(self._pending) + len(items) > self.max_pending_rows:
            raise ResourceExhausted(
                f"{len(self._pending)} writes are waiting for the database; retry with backoff"
            )
        loop = asyncio.get_running_loop()
        futures = []
        for kind, row in items:
            future: asyncio.Future[Any] = loop.create_future()
            self._pending.append(_Item(kind, row, future))
            futures.append(future)
        self._has_rows.set()
        if len(self._pending) >= self.batch_max_rows:
            self._full.set()
        return futures

    # -- background task -------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo,
            connect_timeout=max(1, round(self.connect_timeout_s)),
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
            application_name="banditroute-writer",
            autocommit=True,  # transactions are explicit: BEGIN travels with the batch's queries
        )

    async def _run(self) -> None:
        backoff = self.backoff_initial_s
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
                    backoff = min(backoff * 2, self.backoff_max_s)
                    continue
                if not self._healthy:
                    log.info("database reachable again; writes resume")
                self._healthy = True
                backoff = self.backoff_initial_s
            if not self._pending:
                if self._closing:
                    return
                self._has_rows.clear()
                await self._has_rows.wait()
                continue
            await self._gather()
            batch = [
                self._pending.popleft() for _ in range(min(len(self._pending), self.batch_max_rows))
            ]
            if len(self._pending) < self.batch_max_rows:
                self._full.clear()
            await self._flush(batch)

    async def _gather(self) -> None:
        """Wait up to ``flush_ms`` for more rows, unless the batch is full or we are closing."""
        if self._closing or len(self._pending) >= self.batch_max_rows:
            return
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.flush_s)

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
        self._full.clear()

    async def _flush(self, batch: list[_Item]) -> None:
        conn = self._conn
        assert conn is not None
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.flush_timeout_s):
                if _plain_decisions(batch):
                    results = await _commit_plain_decisions(conn, batch)
                else:
                    results = await _commit_batch(conn, batch)
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
                    await self._flush([item])
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


# -- the batch transaction -----------------------------------------------------------------


async def _commit_batch(conn: psycopg.AsyncConnection[Any], batch: list[_Item]) -> list[Any]:
    """Write ``batch`` in one transaction and return one result per item (in order).

    Round trips are few: one pipeline takes the advisory lock, allocates one event id per item
    (item ``i`` gets the ``i``-th id, so ids follow arrival order; ids of rows not written are
    skipped), claims request ids, looks up decisions and stored outcomes/feedback and queues
    the NOTIFY (delivered at commit); then one COPY per table and the COMMIT.
    """
    decisions = [(i, it.row) for i, it in enumerate(batch) if it.kind == "d"]
    outcomes = [(i, it.row) for i, it in enumerate(batch) if it.kind == "o"]
    feedback = [(i, it.row) for i, it in enumerate(batch) if it.kind == "f"]
    events = outcomes + feedback
    try:
        lock, ids, claim, known_cur, outcome_cur, feedback_cur = (conn.cursor() for _ in range(6))
        async with conn.pipeline() as pipeline:
            await conn.execute("BEGIN")  # autocommit connection: the transaction is explicit
            await lock.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOG_LOCK_KEY,))
            await ids.execute(
                "SELECT setval('event_ids', nextval('event_ids') + %s - 1)", (len(batch),)
            )
            keyed = _first_request_ids(decisions)
            if keyed:
                await claim.execute(*_claim_query(keyed))
            if events:
                await known_cur.execute(*_decisions_query([row for _, row in events]))
            if outcomes:
                await outcome_cur.execute(*_outcomes_query(outcomes))
            if feedback:
                await feedback_cur.execute(*_feedback_query(feedback))
            if events:  # followers learn from outcomes and feedback; decisions alone teach nothing
                await lock.execute(
                    "SELECT pg_notify(%s, currval('event_ids')::text)", (EVENTS_CHANNEL,)
                )
            await pipeline.sync()
            row = await ids.fetchone()
            assert row is not None
            first_id = int(row[0]) - len(batch) + 1
            claimed = {(t, r) for t, r in await claim.fetchall()} if keyed else set()
            known = dict(await known_cur.fetchall()) if events else {}
            stored_o = await outcome_cur.fetchall() if outcomes else []
            stored_f = await feedback_cur.fetchall() if feedback else []

        results: list[Any] = [None] * len(batch)
        accepted = []
        in_batch: dict[uuid.UUID, tuple[int, str]] = {}
        for i, row in decisions:
            if row["request_id"] and (
                keyed.get((row["tenant"], row["request_id"])) is not row
                or (row["tenant"], row["request_id"]) not in claimed
            ):
                continue  # the key already had a decision: result None
            results[i] = first_id + i
            accepted.append((first_id + i, row))
            in_batch[row["decision_id"]] = (i, row["tenant"])
        to_insert_o = _check_outcomes(outcomes, stored_o, known, in_batch, results)
        to_insert_f = _check_feedback(feedback, stored_f, known, in_batch, results)
        for i, _, tenant in [*to_insert_o, *to_insert_f]:
            results[i] = WriteResult(WriteStatus.INSERTED, first_id + i, None, tenant)
        for i, result in enumerate(results):
            # a repeat of a row written earlier in this batch pointed at it by -1 - index
            if isinstance(result, WriteResult) and result.event_id < 0:
                event_id = first_id + (-1 - result.event_id)
                results[i] = WriteResult(result.status, event_id, result.stored, result.tenant)

        async with conn.cursor() as cur:
            if accepted:
                await _copy(
                    cur,
                    "decisions",
                    ("event_id", *DECISION_COLUMNS),
                    (_decision_values(event_id, row) for event_id, row in accepted),
                )
            if to_insert_o:
                await _copy(
                    cur,
                    "outcomes",
                    _OUTCOME_INSERT,
                    (
                        (
                            first_id + i,
                            row["decision_id"],
                            row["decision_created_at"],
                            tenant,
                            *(row.get(c) for c in OUTCOME_COLUMNS[:-1]),
                            row.get("error") or "",
                            row["reward"],
                        )
                        for i, row, tenant in to_insert_o
                    ),
                )
            if to_insert_f:
                await _copy(
                    cur,
                    "feedback",
                    _FEEDBACK_INSERT,
                    (
                        (
                            first_id + i,
                            row["decision_id"],
                            row["decision_created_at"],
                            tenant,
                            row["feedback_key"],
                            row["rating"],
                            row.get("comment"),
                            row.get("source") or "",
                        )
                        for i, row, tenant in to_insert_f
                    ),
                )
        await conn.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.rollback()
        raise
    return results


def _plain_decisions(batch: list[_Item]) -> bool:
    """True for a batch of decisions without idempotency keys (the Route hot path)."""
    return all(it.kind == "d" and not it.row["request_id"] for it in batch)


async def _commit_plain_decisions(
    conn: psycopg.AsyncConnection[Any], batch: list[_Item]
) -> list[Any]:
    """Write decisions without request ids in ONE round trip; their event ids, in order.

    The whole transaction is one simple-protocol query: ``BEGIN``, the event-log lock, the id
    allocation, one multi-row ``INSERT`` whose rows compute their ids from ``currval`` (row
    ``i`` of ``n`` gets ``first + i``, as in :func:`_commit_batch`), ``COMMIT``. Values are
    rendered as SQL literals by :func:`_literal`. :func:`_commit_batch` takes three or four
    round trips, each several event-loop waits in psycopg; on Route load (about ten decisions
    per batch) that difference is a large share of the server's CPU.
    """
    n = len(batch)
    try:
        rows = ",".join([_decision_literals(n - 1 - i, it.row) for i, it in enumerate(batch)])
    except TypeError:  # a value _literal does not know: let psycopg adapt it
        return await _commit_batch(conn, batch)
    query = (
        f"BEGIN;SELECT pg_advisory_xact_lock({int(EVENT_LOG_LOCK_KEY)});"
        f"SELECT setval('event_ids', nextval('event_ids') + {n - 1});"
        f"INSERT INTO decisions ({_DECISION_INSERT}) VALUES {rows};COMMIT"
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(query.encode(), prepare=False)  # type: ignore[call-overload]
            cur.nextset()  # BEGIN, then the lock
            cur.nextset()  # then setval
            row = await cur.fetchone()
        if row is None or conn.info.transaction_status != TransactionStatus.IDLE:
            raise psycopg.OperationalError("the decision batch did not commit")
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.rollback()
        raise
    first_id = int(row[0]) - n + 1
    return [first_id + i for i in range(n)]


_DECISION_INSERT = ", ".join(("event_id", *DECISION_COLUMNS))


def _decision_literals(back: int, row: dict[str, Any]) -> str:
    """``(...)`` of one decision for a VALUES list; its id is ``currval - back``."""
    values = _decision_values(0, row)
    return f"(currval('event_ids')-{back}," + ",".join([_literal(v) for v in values[1:]]) + ")"


def _literal(value: Any) -> str:
    r"""``value`` as a PostgreSQL literal (the column type gives its type).

    A string with a backslash uses the escape syntax (``E'...'``, backslashes doubled), any
    other string the standard one: both read the same whatever
    ``standard_conforming_strings`` is. Raises ``TypeError`` for types it does not know.

    >>> import datetime, uuid
    >>> print(_literal("it's a \\ backslash"), _literal("it's"), _literal(None))
    E'it''s a \\ backslash' 'it''s' NULL
    >>> print(_literal(float("-inf")), _literal(0.1), _literal(7), _literal(True))
    '-Infinity' 0.1 7 TRUE
    >>> print(_literal(bytes([1, 255])), _literal(uuid.UUID(int=1)))
    E'\\x01ff' '00000000-0000-0000-0000-000000000001'
    >>> print(_literal(datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)))
    '2026-01-02T00:00:00+00:00'
    """
    convert = _LITERALS.get(type(value))
    if convert is None:
        raise TypeError(f"no SQL literal for {type(value).__name__}")
    return convert(value)


def _str_literal(value: str) -> str:
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'" if "'" in value else "'" + value + "'"


def _float_literal(value: float) -> str:
    text = repr(value)
    return text if math.isfinite(value) else _NON_FINITE[text]


def _datetime_literal(value: datetime) -> str:
    if value.tzinfo is None:
        raise TypeError("timestamps must be timezone-aware")
    return f"'{value.isoformat()}'"


_NON_FINITE = {"nan": "'NaN'", "inf": "'Infinity'", "-inf": "'-Infinity'"}
_LITERALS: dict[type, Callable[[Any], str]] = {
    str: _str_literal,
    type(None): lambda _: "NULL",
    int: str,
    float: _float_literal,
    bool: lambda v: "TRUE" if v else "FALSE",
    uuid.UUID: lambda v: f"'{v}'",
    datetime: _datetime_literal,
    bytes: lambda v: "E'\\\\x" + v.hex() + "'",
}


_OUTCOME_INSERT = (
    "event_id",
    "decision_id",
    "decision_created_at",
    "tenant",
    *OUTCOME_COLUMNS,
    "reward",
)
_FEEDBACK_INSERT = (
    "event_id",
    "decision_id",
    "decision_created_at",
    "tenant",
    "feedback_key",
    "rating",
    "comment",
    "source",
)
assert OUTCOME_COLUMNS[-1] == "error"


async def _copy(
    cur: psycopg.AsyncCursor[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    async with cur.copy(statement) as copy:
        for row in rows:
            await copy.write_row(row)


def _first_request_ids(
    decisions: list[tuple[int, dict[str, Any]]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The first decision row of each ``(tenant, request_id)`` in the batch."""
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for _, row in decisions:
        if row["request_id"]:
            first.setdefault((row["tenant"], row["request_id"]), row)
    return first


def _claim_query(keyed: dict[tuple[str, str], dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    rows = list(keyed.values())
    return (
        "INSERT INTO request_ids (tenant, request_id, decision_id, created_at) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[], %s::timestamptz[]) "
        "ON CONFLICT DO NOTHING RETURNING tenant, request_id",
        (
            [row["tenant"] for row in rows],
            [row["request_id"] for row in rows],
            _uuid_array(row["decision_id"] for row in rows),
            _timestamp_array(row["created_at"] for row in rows),
        ),
    )


def _decisions_query(rows: list[dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """Tenants of the stored decisions among ``rows`` (by exact id and partition key)."""
    keys = {(row["decision_id"], row["decision_created_at"]) for row in rows}
    return (
        "SELECT d.decision_id, d.tenant FROM unnest(%s::uuid[], %s::timestamptz[]) AS k(id, ts) "
        "JOIN decisions d ON d.decision_id = k.id AND d.created_at = k.ts",
        (_uuid_array(k[0] for k in keys), _timestamp_array(k[1] for k in keys)),
    )


def _outcomes_query(outcomes: list[tuple[int, dict[str, Any]]]) -> tuple[str, tuple[Any, ...]]:
    return (
        f"SELECT decision_id, event_id, {', '.join(OUTCOME_COLUMNS)}, reward FROM outcomes "
        "WHERE decision_id = ANY(%s::uuid[])",
        (_uuid_array(row["decision_id"] for _, row in outcomes),),
    )


def _feedback_query(feedback: list[tuple[int, dict[str, Any]]]) -> tuple[str, tuple[Any, ...]]:
    return (
        "SELECT f.decision_id, f.feedback_key, f.event_id, f.rating, f.comment, f.source "
        "FROM unnest(%s::uuid[], %s::text[]) AS k(id, key) "
        "JOIN feedback f ON f.decision_id = k.id AND f.feedback_key = k.key",
        (
            _uuid_array(row["decision_id"] for _, row in feedback),
            [row["feedback_key"] for _, row in feedback],
        ),
    )


def _access(
    i: int,
    row: dict[str, Any],
    known: dict[uuid.UUID, str],
    in_batch: dict[uuid.UUID, tuple[int, str]],
) -> tuple[WriteResult | None, str | None]:
    tenant = known.get(row["decision_id"])
    if tenant is None:
        earlier = in_batch.get(row["decision_id"])
        if earlier is not None and earlier[0] < i:  # its decision is written in this batch
            tenant = earlier[1]
    if tenant is None:
        return WriteResult(WriteStatus.UNKNOWN_DECISION), None
    if row.get("tenant") is not None and row["tenant"] != tenant:
        return WriteResult(WriteStatus.WRONG_TENANT), None
    return None, tenant


def _check_outcomes(
    outcomes: list[tuple[int, dict[str, Any]]],
    records: list[Any],
    known: dict[uuid.UUID, str],
    in_batch: dict[uuid.UUID, tuple[int, str]],
    results: list[Any],
) -> list[tuple[int, dict[str, Any], str]]:
    stored: dict[Any, tuple[int, dict[str, Any]]] = {
        record[0]: (record[1], dict(zip((*OUTCOME_COLUMNS, "reward"), record[2:], strict=True)))
        for record in records
    }
    return _check_rows(
        outcomes,
        stored,
        lambda row: row["decision_id"],
        OUTCOME_COLUMNS,
        ("reward",),
        known,
        in_batch,
        results,
    )


def _check_feedback(
    feedback: list[tuple[int, dict[str, Any]]],
    records: list[Any],
    known: dict[uuid.UUID, str],
    in_batch: dict[uuid.UUID, tuple[int, str]],
    results: list[Any],
) -> list[tuple[int, dict[str, Any], str]]:
    stored: dict[Any, tuple[int, dict[str, Any]]] = {
        (record[0], record[1]): (record[2], dict(zip(FEEDBACK_COLUMNS, record[3:], strict=True)))
        for record in records
    }
    return _check_rows(
        feedback,
        stored,
        lambda row: (row["decision_id"], row["feedback_key"]),
        FEEDBACK_COLUMNS,
        (),
        known,
        in_batch,
        results,
    )


def _check_rows(
    rows: list[tuple[int, dict[str, Any]]],
    stored: dict[Any, tuple[int, dict[str, Any]]],
    key_of: Callable[[dict[str, Any]], Any],
    columns: Sequence[str],
    extra: Sequence[str],
    known: dict[uuid.UUID, str],
    in_batch: dict[uuid.UUID, tuple[int, str]],
    results: list[Any],
) -> list[tuple[int, dict[str, Any], str]]:
    """Sort ``rows`` into refused (access), DUPLICATE/CONFLICT of a stored row (compared on
    ``columns``) and rows to insert; ``stored`` maps each key to (event id, fields)."""
    to_insert = []
    for i, row in rows:
        denied, tenant = _access(i, row, known, in_batch)
        if denied is not None:
            results[i] = denied
            continue
        key = key_of(row)
        existing = stored.get(key)
        if existing is not None:
            event_id, fields = existing
            same = all(_same(fields[c], row.get(c), c) for c in columns)
            status = WriteStatus.DUPLICATE if same else WriteStatus.CONFLICT
            results[i] = WriteResult(status, event_id, fields, tenant)
            continue
        assert tenant is not None
        to_insert.append((i, row, tenant))
        # a later row of this batch with the same key compares against this one
        stored[key] = (-1 - i, {**{c: row.get(c) for c in columns}, **{c: row[c] for c in extra}})
    return to_insert


def _uuid_array(values: Iterable[uuid.UUID]) -> str:
    """A ``uuid[]`` literal: much cheaper than dumping a list element by element."""
    return (
        "{"
        + ",".join(str(uuid.UUID(str(v)) if not isinstance(v, uuid.UUID) else v) for v in values)
        + "}"
    )


def _timestamp_array(values: Iterable[datetime]) -> str:
    """A ``timestamptz[]`` literal of timezone-aware datetimes (ISO 8601 needs no quoting)."""
    out = []
    for value in values:
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        out.append(value.isoformat())
    return "{" + ",".join(out) + "}"


def _same(stored: Any, given: Any, column: str) -> bool:
    if column in ("error", "source"):
        return (stored or "") == (given or "")
    return bool(stored == given)


_OUTCOME_REQUIRED = ("decision_id", "decision_created_at", "reward")
_FEEDBACK_REQUIRED = ("decision_id", "decision_created_at", "feedback_key", "rating")


def _checked(row: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    missing = [c for c in required if row.get(c) is None]
    if missing:
        raise ValueError(f"row misses {missing}")
    return dict(row)


def _decision_row(row: Mapping[str, Any]) -> dict[str, Any]:
    full = {**_DECISION_DEFAULTS, **row}
    missing = [c for c in DECISION_COLUMNS if c not in full]
    if missing:
        raise ValueError(f"decision row misses columns {missing}")
    return full


#: Positions of the JSON columns in a COPY row of ``("event_id", *DECISION_COLUMNS)``.
_JSON_POSITIONS = tuple(1 + j for j, c in enumerate(DECISION_COLUMNS) if c in _JSON_COLUMNS)
_get_decision_columns = operator.itemgetter(*DECISION_COLUMNS)
_EMPTY_OBJECT: dict[str, Any] = {}


def _decision_values(event_id: int, row: dict[str, Any]) -> list[Any]:
    """One decision's COPY values: JSON columns pre-encoded to text (an empty object, the
    common case, as a constant), so no adapter object is built per value.

    >>> row = {**_DECISION_DEFAULTS, **{c: c for c in DECISION_COLUMNS if c not in
    ...        _DECISION_DEFAULTS}, "numeric_context": {"a": 1.5}}
    >>> values = _decision_values(7, row)
    >>> values[0], values[1 + DECISION_COLUMNS.index("numeric_context")]
    (7, '{"a": 1.5}')
    >>> values[1 + DECISION_COLUMNS.index("categorical_context")]
    '{}'
    """
    values = [event_id, *_get_decision_columns(row)]
    for j in _JSON_POSITIONS:
        value = values[j]
        if value is not None:
            values[j] = "{}" if value == _EMPTY_OBJECT else json.dumps(value)
    # arrays as PostgreSQL array literals: psycopg's list dumper is generic and slow
    try:
        values[_CANDIDATES_AT] = _text_array(values[_CANDIDATES_AT])
        values[_SCORES_AT] = _float_array(values[_SCORES_AT])
        values[_PROBABILITIES_AT] = _float_array(values[_PROBABILITIES_AT])
    except (TypeError, ValueError, AttributeError):
        values[_CANDIDATES_AT : _PROBABILITIES_AT + 1] = _get_array_columns(row)
    return values


_CANDIDATES_AT = 1 + DECISION_COLUMNS.index("candidates")
_SCORES_AT = 1 + DECISION_COLUMNS.index("scores")
_PROBABILITIES_AT = 1 + DECISION_COLUMNS.index("probabilities")
assert _SCORES_AT == _CANDIDATES_AT + 1 and _PROBABILITIES_AT == _SCORES_AT + 1
_get_array_columns = operator.itemgetter("candidates", "scores", "probabilities")


def _text_array(names: Sequence[str]) -> str:
    r"""A ``text[]`` literal, every element quoted (any character is safe).

    >>> print(_text_array(["gpt-4o", 'say "hi", \\o/']))
    {"gpt-4o","say \"hi\", \\o/"}
    """
    return (
        '{"' + '","'.join([n.replace("\\", "\\\\").replace('"', '\\"') for n in names]) + '"}'
        if names
        else "{}"
    )


def _float_array(numbers: Iterable[float]) -> str:
    """A ``float8[]`` literal; ``repr`` of a float round-trips exactly (as psycopg dumps it).

    >>> _float_array([0.5, 1, float("inf")])
    '{0.5,1.0,inf}'
    """
    return "{" + ",".join([repr(float(v)) for v in numbers]) + "}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
