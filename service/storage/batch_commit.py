"""One batch of the group-commit writer as one transaction on the event log.

:func:`commit_batch` writes any mix of decisions, outcomes and feedback: it allocates one id per
item, claims request ids, runs the outcome/feedback checks of
:mod:`banditroute.service.storage.row_checks`, copies the accepted rows and queues
``pg_notify('banditroute_events', <largest id>)`` when the batch teaches something.

Only a batch holding outcomes or feedback takes ``pg_advisory_xact_lock(EVENT_LOG_LOCK_KEY)``
before its ids (held until COMMIT), so the events followers read (outcomes and feedback, in
``event_id`` order) become visible in id order. Decisions are no events a follower reads by id
(an event joins its decision, which committed before it or in the same transaction), so a
batch of decisions alone takes no lock: its ids are plain ``nextval`` calls and writer
processes commit decisions side by side instead of one after the other.
:func:`commit_plain_decisions` is the Route hot path: a batch of decisions alone, one round
trip; their request ids (when they have some) are claimed in the same transaction, and a batch
where one is taken already is written again by :func:`commit_batch`, which settles it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from banditroute.service.storage.models.event_log import EVENT_LOG_LOCK_KEY, EVENTS_CHANNEL
from banditroute.service.storage.row_checks import (
    FEEDBACK,
    OUTCOMES,
    WriteResult,
    WriteStatus,
    claim_query,
    classify,
    decisions_query,
    feedback_query,
    first_request_ids,
    outcomes_query,
    rated_query,
)
from banditroute.service.storage.rows import DECISION_COLUMNS, OUTCOME_COLUMNS, DecisionRow
from banditroute.service.storage.sql_literals import (
    decision_copy_values,
    decision_literals,
    literal,
)

__all__ = ["BatchItem", "commit_batch", "commit_plain_decisions", "is_plain_decisions"]

#: An item of a batch: ``("d", DecisionRow)``, ``("o", outcome row)`` or ``("f", feedback row)``.
BatchItem = tuple[str, Any]

_DECISION_INSERT = ("event_id", *DECISION_COLUMNS)
_DECISION_INSERT_SQL = ", ".join(_DECISION_INSERT)
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


def is_plain_decisions(batch: Sequence[BatchItem]) -> bool:
    """True for a batch of decisions alone (the Route hot path)."""
    return all(kind == "d" for kind, _ in batch)


def _claim_literals(batch: Sequence[BatchItem]) -> str:
    """``INSERT INTO request_ids ...;`` for the batch's request ids ("" when none has one)."""
    claims = [
        f"({literal(row.tenant)},{literal(row.request_id)},{literal(row.decision_id)},"
        f"{literal(row.created_at)})"
        for _, row in batch
        if row.request_id
    ]
    if not claims:
        return ""
    return (
        "INSERT INTO request_ids (tenant, request_id, decision_id, created_at) VALUES "
        + ",".join(claims)
        + ";"
    )


async def commit_plain_decisions(
    conn: psycopg.AsyncConnection[Any], batch: Sequence[BatchItem]
) -> list[Any]:
    """Write a batch of decisions in ONE round trip; their event ids, in order (None for a
    decision whose request id another decision has: see below).

    One simple-protocol query on the autocommit connection (so one implicit transaction): the
    claims of the batch's request ids, if any, then a multi-row ``INSERT`` whose rows take
    their ids from ``nextval('event_ids')``, ``RETURNING`` them in row order. No event-log
    lock (see the module docstring). Values are rendered as SQL literals
    (:mod:`banditroute.service.storage.sql_literals`). :func:`commit_batch` takes three or four
    round trips, each several event-loop waits in psycopg; on Route load (about ten decisions
    per batch) that difference is a large share of the server's CPU.

    Claims are optimistic: a request id already taken (a retry that reached two processes, or
    twice in the batch) fails the whole query, and the batch is written again by
    :func:`commit_batch`, whose claims skip taken ids.
    """
    try:
        rows = ",".join([decision_literals(row) for _, row in batch])
        claims = _claim_literals(batch)
    except TypeError:  # a value the literals do not know: let psycopg adapt it
        return await commit_batch(conn, batch)
    query = (
        f"{claims}INSERT INTO decisions ({_DECISION_INSERT_SQL}) VALUES {rows} RETURNING event_id"
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(query.encode(), prepare=False)  # type: ignore[call-overload]
            if claims:
                cur.nextset()  # the claims' command status; the decisions' ids come next
            ids: list[Any] = [int(r[0]) for r in await cur.fetchall()]
        if len(ids) != len(batch) or conn.info.transaction_status != TransactionStatus.IDLE:
            raise psycopg.OperationalError("the decision batch did not commit")
    except psycopg.errors.UniqueViolation:
        if not claims:
            raise
        return await commit_batch(conn, batch)  # rolled back as a whole: settle the claims
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.rollback()
        raise
    return ids


async def commit_batch(conn: psycopg.AsyncConnection[Any], batch: Sequence[BatchItem]) -> list[Any]:
    """Write ``batch`` in one transaction and return one result per item (in order): a
    decision's event id (None when its request id already had a decision), an outcome's or
    feedback's :class:`~banditroute.service.storage.row_checks.WriteResult`.

    Round trips are few: one pipeline takes the advisory lock (only when the batch holds an
    outcome or feedback), allocates one event id per item (ascending in item order, so ids
    follow arrival order; ids of rows not written are skipped), claims request ids, looks up
    decisions and stored outcomes/feedback and queues the NOTIFY (delivered at commit); then
    one COPY per table and the COMMIT.
    """
    decisions = [(i, row) for i, (kind, row) in enumerate(batch) if kind == "d"]
    outcomes = [(i, row) for i, (kind, row) in enumerate(batch) if kind == "o"]
    feedback = [(i, row) for i, (kind, row) in enumerate(batch) if kind == "f"]
    events = outcomes + feedback
    # Outcomes whose decision the caller did not read (see WriteStatus.STALE).
    unverified = [(i, row) for i, row in outcomes if row.get("unverified")]
    try:
        lock, ids, claim, known_cur, outcome_cur, feedback_cur, rated_cur = (
            conn.cursor() for _ in range(7)
        )
        async with conn.pipeline() as pipeline:
            await conn.execute("BEGIN")  # autocommit connection: the transaction is explicit
            if events:  # followers read outcomes and feedback in id order: see the docstring
                await lock.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOG_LOCK_KEY,))
            await ids.execute(
                "SELECT nextval('event_ids') FROM generate_series(1, %s) ORDER BY 1",
                (len(batch),),
            )
            keyed = first_request_ids(decisions)
            if keyed:
                await claim.execute(*claim_query(keyed))
            if events:
                await known_cur.execute(*decisions_query([row for _, row in events]))
            if outcomes:
                await outcome_cur.execute(*outcomes_query(outcomes))
            if feedback:
                await feedback_cur.execute(*feedback_query(feedback))
            if unverified:
                await rated_cur.execute(*rated_query(unverified))
            if events:  # followers learn from outcomes and feedback; decisions alone teach nothing
                await lock.execute(
                    "SELECT pg_notify(%s, currval('event_ids')::text)", (EVENTS_CHANNEL,)
                )
            await pipeline.sync()
            event_ids = [int(r[0]) for r in await ids.fetchall()]
            assert len(event_ids) == len(batch)
            claimed = {(t, r) for t, r in await claim.fetchall()} if keyed else set()
            known = dict(await known_cur.fetchall()) if events else {}
            stored_o = await outcome_cur.fetchall() if outcomes else []
            stored_f = await feedback_cur.fetchall() if feedback else []
            rated = {r[0] for r in await rated_cur.fetchall()} if unverified else set()

        results: list[Any] = [None] * len(batch)
        accepted = _accepted_decisions(decisions, keyed, claimed, event_ids, results)
        in_batch = {row.decision_id: (i, row.tenant) for i, row in accepted}
        if unverified:
            outcomes = _verified(outcomes, unverified, rated, stored_o, results)
        to_insert_o = classify(OUTCOMES, outcomes, stored_o, known, in_batch, results)
        for i, _ in unverified:
            result = results[i]
            if result is not None and result.status is WriteStatus.UNKNOWN_DECISION:
                results[i] = WriteResult(WriteStatus.STALE)
        to_insert_f = classify(FEEDBACK, feedback, stored_f, known, in_batch, results)
        for i, _, tenant in [*to_insert_o, *to_insert_f]:
            results[i] = WriteResult(WriteStatus.INSERTED, event_ids[i], None, tenant)
        for i, result in enumerate(results):
            # a repeat of a row written earlier in this batch pointed at it by -1 - index
            if isinstance(result, WriteResult) and result.event_id < 0:
                event_id = event_ids[-1 - result.event_id]
                results[i] = WriteResult(result.status, event_id, result.stored, result.tenant)

        async with conn.cursor() as cur:
            if accepted:
                await _copy(
                    cur,
                    "decisions",
                    _DECISION_INSERT,
                    (decision_copy_values(event_ids[i], row) for i, row in accepted),
                )
            if to_insert_o:
                await _copy(
                    cur,
                    "outcomes",
                    _OUTCOME_INSERT,
                    (
                        (
                            event_ids[i],
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
                            event_ids[i],
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


def _verified(
    outcomes: list[tuple[int, Any]],
    unverified: list[tuple[int, Any]],
    rated: set[Any],
    stored: Sequence[Sequence[Any]],
    results: list[Any],
) -> list[tuple[int, Any]]:
    """``outcomes`` less the unverified ones whose decision has feedback or a stored outcome
    (their result is STALE: the reward or the answer depends on what the caller did not read)."""
    has_outcome = {r[0] for r in stored}
    stale = {
        i
        for i, row in unverified
        if row["decision_id"] in rated or row["decision_id"] in has_outcome
    }
    for i in stale:
        results[i] = WriteResult(WriteStatus.STALE)
    return [item for item in outcomes if item[0] not in stale] if stale else outcomes


def _accepted_decisions(
    decisions: list[tuple[int, DecisionRow]],
    keyed: dict[tuple[str, str], DecisionRow],
    claimed: set[tuple[str, str]],
    event_ids: list[int],
    results: list[Any],
) -> list[tuple[int, DecisionRow]]:
    """Decisions to insert with their batch positions (``results`` gets their event ids); a
    decision whose request id already had one, stored or earlier in the batch, gets None."""
    accepted = []
    for i, row in decisions:
        key = (row.tenant, row.request_id)
        if row.request_id and (keyed.get(key) is not row or key not in claimed):
            continue  # the key already had a decision: result None
        results[i] = event_ids[i]
        accepted.append((i, row))
    return accepted


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
