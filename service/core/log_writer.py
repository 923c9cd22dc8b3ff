"""A group-commit writer of decisions, outcomes and feedback (the core's ``EventWriter``).

Writes queue up; one task drains the queue every ``flush_ms`` (or at ``max_rows``) and writes
the whole batch in one transaction: take the event-log advisory lock, allocate event ids from
the shared sequence in queue order, insert (``executemany`` in pipeline mode), NOTIFY the largest
id, commit. Each caller's future resolves only after the commit, so an acknowledged write is
durable. A failed batch fails every caller in it with ``Unavailable`` (nothing of it was
written) and the writer reconnects for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from service.errors import ResourceExhausted, Unavailable
from service.storage.models import EVENT_LOG_LOCK_KEY, EVENTS_CHANNEL

__all__ = ["LogWriter"]

log = logging.getLogger(__name__)

_SIGNED_LOCK_KEY = (
    EVENT_LOG_LOCK_KEY - (1 << 64) if EVENT_LOG_LOCK_KEY >= 1 << 63 else (EVENT_LOG_LOCK_KEY)
)

_DECISION_COLUMNS = (
    "decision_id",
    "created_at",
    "event_id",
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
)
_JSON_COLUMNS = {"numeric_context", "categorical_context", "shadow"}
_DECISION_VALUES = ", ".join(
    f"%({c})s" + ("::jsonb" if c in _JSON_COLUMNS else "") for c in _DECISION_COLUMNS
)
_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) VALUES ({_DECISION_VALUES})"
)
_INSERT_REQUEST = (
    "INSERT INTO request_ids (tenant, request_id, decision_id, created_at) "
    "VALUES (%(tenant)s, %(request_id)s, %(decision_id)s, %(created_at)s) "
    "ON CONFLICT DO NOTHING RETURNING request_id"
)
_OUTCOME_COLUMNS = (
    "event_id",
    "decision_id",
    "decision_created_at",
    "tenant",
    "quality",
    "success",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "error",
    "reward",
)
_INSERT_OUTCOME = (
    f"INSERT INTO outcomes ({', '.join(_OUTCOME_COLUMNS)}) VALUES "
    f"({', '.join(f'%({c})s' for c in _OUTCOME_COLUMNS)}) "
    "ON CONFLICT (decision_id) DO NOTHING RETURNING event_id"
)
_FEEDBACK_COLUMNS = (
    "event_id",
    "decision_id",
    "decision_created_at",
    "tenant",
    "feedback_key",
    "rating",
    "comment",
    "source",
)
_INSERT_FEEDBACK = (
    f"INSERT INTO feedback ({', '.join(_FEEDBACK_COLUMNS)}) VALUES "
    f"({', '.join(f'%({c})s' for c in _FEEDBACK_COLUMNS)}) "
    "ON CONFLICT (decision_id, feedback_key) DO NOTHING RETURNING event_id"
)


@dataclass(slots=True)
class _Item:
    kind: str  # "d", "o", "f"
    row: dict[str, Any]
    future: asyncio.Future[int | None]


class LogWriter:
    """Group-commit writer on a dedicated psycopg async connection.

    Parameters
    ----------
    url
        libpq URL of the database.
    flush_ms
        Longest a write waits for its batch to start.
    max_rows
        Most rows per transaction.
    max_pending
        Queued rows beyond which writes get ``RESOURCE_EXHAUSTED``.
    metrics
        Optional metrics sink (batch sizes, DB errors).
    """

    def __init__(
        self,
        url: str,
        *,
        flush_ms: float = 2.0,
        max_rows: int = 1000,
        max_pending: int = 50_000,
        connect_timeout_s: float = 5.0,
        metrics: Any = None,
    ) -> None:
        self.url = url
        self.flush_s = flush_ms / 1000.0
        self.max_rows = max_rows
        self.max_pending = max_pending
        self.connect_timeout_s = connect_timeout_s
        self.metrics = metrics
        self._queue: list[_Item] = []
        self._has_items = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Start the flush task (connects lazily)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="banditroute-writer")

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        self._closing = True
        self._has_items.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 30)
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        while self._queue or not self._idle.is_set():
            self._has_items.set()
            await asyncio.sleep(0.001)

    # ------------------------------------------------------------------ API
    def _submit(self, kind: str, row: dict[str, Any]) -> asyncio.Future[int | None]:
        if self._closing:
            raise Unavailable("server is shutting down; retry on another replica")
        if len(self._queue) >= self.max_pending:
            raise ResourceExhausted("too many writes waiting for the database; retry later")
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(kind, row, fut))
        self._has_items.set()
        return fut

    async def write_decision(self, row: dict[str, Any]) -> int | None:
        """Insert a decision; its event id, or None when its request id was taken."""
        return await self._submit("d", row)

    async def write_outcomes(self, rows: Sequence[dict[str, Any]]) -> list[int | None]:
        """Insert outcomes; event id per row, None where the decision had one."""
        futures = [self._submit("o", row) for row in rows]
        return list(await asyncio.gather(*futures))

    async def write_feedback(self, row: dict[str, Any]) -> int | None:
        """Insert feedback; its event id, None when the key existed."""
        return await self._submit("f", row)

    # ------------------------------------------------------------------ flushing
    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._has_items.clear()
                await self._has_items.wait()
                if not self._queue:
                    continue
                # let concurrent callers join the batch
                await asyncio.sleep(self.flush_s)
            batch, self._queue = self._queue[: self.max_rows], self._queue[self.max_rows :]
            self._idle.clear()
            try:
                await self._flush(batch)
            finally:
                self._idle.set()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=max(1, round(self.connect_timeout_s))
            )
        return self._conn

    async def _flush(self, batch: list[_Item]) -> None:
        try:
            results = await self._write(batch)
        except Exception as exc:
            if self.metrics is not None:
                self.metrics.db_error("write")
            log.warning("group commit of %d rows failed: %s", len(batch), type(exc).__name__)
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
            err = Unavailable(f"database unavailable: {type(exc).__name__}; retry with backoff")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        if self.metrics is not None:
            self.metrics.write_batch_rows.observe(len(batch))
        for item, event_id in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(event_id)

    async def _write(self, batch: list[_Item]) -> list[int | None]:
        conn = await self._connection()
        results: list[int | None] = [None] * len(batch)
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SIGNED_LOCK_KEY,))
            # request ids first: a taken one means another process made that decision
            with_rid = [i for i, it in enumerate(batch) if it.kind == "d" and it.row["request_id"]]
            skip: set[int] = set()
            for i in with_rid:
                await cur.execute(_INSERT_REQUEST, batch[i].row)
                if await cur.fetchone() is None:
                    skip.add(i)
            live = [i for i in range(len(batch)) if i not in skip]
            await cur.execute(
                "SELECT nextval('event_ids') FROM generate_series(1, %s)", (len(live),)
            )
            ids = [r[0] for r in await cur.fetchall()]
            rows_d, rows_o, rows_f = [], [], []
            idx_o, idx_f = [], []
            for i, event_id in zip(live, ids, strict=True):
                it = batch[i]
                row = dict(it.row, event_id=event_id)
                if it.kind == "d":
                    for c in _JSON_COLUMNS:
                        if row.get(c) is not None:
                            row[c] = json.dumps(row[c])
                    rows_d.append(row)
                    results[i] = event_id
                elif it.kind == "o":
                    rows_o.append(row)
                    idx_o.append(i)
                else:
                    rows_f.append(row)
                    idx_f.append(i)
            if rows_d:
                await cur.executemany(_INSERT_DECISION, rows_d)
            for sql, rows, idx in (
                (_INSERT_OUTCOME, rows_o, idx_o),
                (_INSERT_FEEDBACK, rows_f, idx_f),
            ):
                if not rows:
                    continue
                await cur.executemany(sql, rows, returning=True)
                for i in idx:
                    got = await cur.fetchone()
                    results[i] = None if got is None else int(got[0])
                    cur.nextset()
            top = max(ids, default=0)
            if top:
                await cur.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, str(top)))
        return results
