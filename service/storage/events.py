"""Reading the event log: outcomes and feedback in ``event_id`` order, joined with their decision.

This is the one reader of the log: the follower (``banditroute.service.core.follower``), a rebuild
from scratch (``banditroute.service.core.rebuild``) and the tests read it through here.

Each :class:`LearningEvent` carries what a policy needs to learn from it and nothing that
depends on when it is read: for a feedback event, the decision's outcome only if that outcome
came earlier in the log, and the ratings of earlier feedback on the same decision. Replaying
the log therefore yields the same events, in the same order, with the same content.

:class:`Listener` wakes followers on ``NOTIFY`` (the writer notifies in every batch transaction
that holds an outcome or feedback; every config change notifies too); callers still poll on a
timeout, so a lost notification only delays learning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy import Connection

from banditroute.service.config import libpq_url
from banditroute.service.storage.models.config_change import CONFIG_CHANNEL
from banditroute.service.storage.models.event_log import EVENTS_CHANNEL

__all__ = [
    "LearningEvent",
    "Listener",
    "iter_events",
    "last_event_id",
    "read_events",
    "read_events_async",
]

log = logging.getLogger(__name__)

_EVENTS_SQL = """
WITH e AS (
    SELECT * FROM (
        SELECT event_id, 'outcome' AS kind, decision_id, decision_created_at
          FROM outcomes WHERE event_id > %(after)s
        UNION ALL
        SELECT event_id, 'feedback' AS kind, decision_id, decision_created_at
          FROM feedback WHERE event_id > %(after)s
    ) u ORDER BY event_id LIMIT %(limit)s
)
SELECT e.event_id, e.kind, e.decision_id, e.decision_created_at,
       d.tenant, d.route, d.policy_name, d.policy_version, d.experiment, d.variant, d.model,
       d.candidates, d.propensity, d.features, d.shadow,
       o.event_id, o.quality, o.success, o.input_tokens, o.output_tokens, o.cost_usd,
       o.latency_ms, o.error, o.reward,
       f.rating, f.source,
       (SELECT array_agg(p.rating ORDER BY p.event_id) FROM feedback p
         WHERE p.decision_id = e.decision_id AND p.event_id < e.event_id) AS prior_ratings,
       d.categorical_context
  FROM e
  LEFT JOIN decisions d ON d.decision_id = e.decision_id AND d.created_at = e.decision_created_at
  LEFT JOIN outcomes o ON o.decision_id = e.decision_id AND o.event_id <= e.event_id
  LEFT JOIN feedback f ON f.event_id = e.event_id AND e.kind = 'feedback'
 ORDER BY e.event_id
"""
_LAST_EVENT_SQL = "SELECT last_value, is_called FROM event_ids"


@dataclass(frozen=True, slots=True)
class LearningEvent:
    """One outcome or feedback event with its decision's context.

    Decision fields are None when the decision was removed by retention.
    ``outcome_*`` fields describe the decision's outcome if it is this event or came earlier
    in the log (else ``outcome_event_id`` is None). ``rating``/``source`` are set for feedback.
    ``prior_ratings`` are the ratings of earlier feedback on the same decision, oldest first.
    """

    event_id: int
    kind: str  # "outcome" or "feedback"
    decision_id: uuid.UUID
    decision_created_at: datetime
    tenant: str | None
    route: str | None
    policy_name: str | None
    policy_version: int | None
    experiment: str | None
    variant: str | None
    model: str | None
    candidates: tuple[str, ...]
    propensity: float | None
    features: np.ndarray | None
    shadow: dict[str, Any] | None
    outcome_event_id: int | None
    quality: float | None
    success: bool | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    latency_ms: float | None
    error: str | None
    reward: float | None
    rating: float | None
    source: str | None
    prior_ratings: tuple[float, ...]
    categorical_context: dict[str, str] | None = None


def _event(row: Sequence[Any]) -> LearningEvent:
    features = None if row[13] is None else np.frombuffer(row[13], dtype="<f8").copy()
    return LearningEvent(
        event_id=row[0],
        kind=row[1],
        decision_id=row[2],
        decision_created_at=row[3],
        tenant=row[4],
        route=row[5],
        policy_name=row[6],
        policy_version=row[7],
        experiment=row[8],
        variant=row[9],
        model=row[10],
        candidates=tuple(row[11] or ()),
        propensity=row[12],
        features=features,
        shadow=row[14],
        outcome_event_id=row[15],
        quality=row[16],
        success=row[17],
        input_tokens=row[18],
        output_tokens=row[19],
        cost_usd=row[20],
        latency_ms=row[21],
        error=row[22],
        reward=row[23],
        rating=row[24],
        source=row[25],
        prior_ratings=tuple(row[26] or ()),
        categorical_context=row[27],
    )


def read_events(
    conn: Connection | psycopg.Connection[Any], after_event_id: int, limit: int = 1000
) -> list[LearningEvent]:
    """Return up to ``limit`` outcome and feedback events with ``event_id > after_event_id``,
    in id order (on a SQLAlchemy or a raw psycopg connection)."""
    params = {"after": after_event_id, "limit": limit}
    if isinstance(conn, Connection):
        rows: Sequence[Sequence[Any]] = conn.exec_driver_sql(_EVENTS_SQL, params).all()
    else:
        rows = conn.execute(_EVENTS_SQL, params).fetchall()
    return [_event(row) for row in rows]


async def read_events_async(
    conn: psycopg.AsyncConnection[Any], after_event_id: int, limit: int = 1000
) -> list[LearningEvent]:
    """Async twin of :func:`read_events` (raw psycopg connection)."""
    cursor = await conn.execute(_EVENTS_SQL, {"after": after_event_id, "limit": limit})
    return [_event(row) for row in await cursor.fetchall()]


def iter_events(
    conn: Connection | psycopg.Connection[Any],
    after_event_id: int = 0,
    upto: int | None = None,
    page_size: int = 1000,
) -> Iterator[LearningEvent]:
    """Every event after ``after_event_id`` (up to ``upto`` when given), read ``page_size`` at
    a time. Writers commit in id order, so the events read form a prefix of the log."""
    after = after_event_id
    while True:
        page = read_events(conn, after, page_size)
        for event in page:
            if upto is not None and event.event_id > upto:
                return
            yield event
        if len(page) < page_size:
            return
        after = page[-1].event_id


def last_event_id(conn: psycopg.Connection[Any]) -> int:
    """Largest event id allocated so far (0 for an empty log); committed ones are <= it."""
    row = conn.execute(_LAST_EVENT_SQL).fetchone()
    assert row is not None
    return int(row[0]) if row[1] else 0


class Listener:
    """LISTEN on banditroute's channels on a dedicated connection, reconnecting by itself.

    Every (re)connect and every lost connection also delivers ``("", "")``: notifications may
    have been missed, so the caller should read the log. :attr:`connected` says whether the
    LISTEN is up (a caller may poll less often meanwhile). TCP keepalives end a LISTEN on a dead
    peer within about 25 s.

    Examples
    --------
    >>> async def follow(url):  # doctest: +SKIP
    ...     async with Listener(url) as listener:
    ...         while True:
    ...             woken = await listener.wait(timeout_s=0.2)  # poll at least every 200 ms
    ...             ...  # read_events_async(...) and apply them
    """

    def __init__(
        self, url: str, channels: Sequence[str] = (EVENTS_CHANNEL, CONFIG_CHANNEL)
    ) -> None:
        self._conninfo = libpq_url(url)
        self.channels = tuple(channels)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        # notifications only wake the caller, so a full queue may drop them
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=1000)
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._run(), name="banditroute-listener")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def wait(self, timeout_s: float) -> list[tuple[str, str]]:
        """Wait up to ``timeout_s`` for notifications; return every ``(channel, payload)``
        received (empty on timeout)."""
        received: list[tuple[str, str]] = []
        with contextlib.suppress(TimeoutError):
            received.append(await asyncio.wait_for(self._queue.get(), timeout_s))
        while not self._queue.empty():
            received.append(self._queue.get_nowait())
        return received

    def _put(self, item: tuple[str, str]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(item)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name="banditroute-listener",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except (OSError, psycopg.Error) as exc:
                log.debug("listener cannot connect: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            try:
                async with conn:
                    for channel in self.channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.connected = True
                    self._put(("", ""))  # a (re)connect may have missed notifications
                    async for notify in conn.notifies():
                        self._put((notify.channel, notify.payload))
            except (OSError, psycopg.Error) as exc:
                log.debug("listener connection lost: %s", exc)
                await asyncio.sleep(backoff)
            finally:
                if self.connected:
                    self.connected = False
                    self._put(("", ""))  # read the log until the LISTEN is back
