"""The group-commit writer: acknowledged means committed, per-row results, outages, order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.service.errors import (
    AlreadyExists,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)
from banditroute.service.storage.writer import GroupCommitWriter, WriterLimits, WriteStatus
from tests.helpers import decision_row, feedback_row, outcome_row


def run(factory: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(factory())  # type: ignore[arg-type]


def count(url: str, table: str, **where: Any) -> int:
    clause = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {clause}", where).fetchone()
    assert row is not None
    return int(row[0])


def test_acknowledged_decision_is_committed_with_its_event_id(fresh_db_url: str) -> None:
    row = decision_row()

    async def scenario() -> int | None:
        async with GroupCommitWriter(fresh_db_url) as writer:
            return await writer.write_decision(row)

    event_id = run(scenario)
    assert isinstance(event_id, int) and event_id > 0
    assert count(fresh_db_url, "decisions", decision_id=row["decision_id"], event_id=event_id) == 1


def test_decision_round_trips_exactly(fresh_db_url: str) -> None:
    row = decision_row(shadow={"v2": {"model": "m2"}}, prompt="hi", bucket=17)

    async def scenario() -> None:
        async with GroupCommitWriter(fresh_db_url) as writer:
            await writer.write_decision(row)

    run(scenario)
    columns = ", ".join(k for k in row)
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        stored = conn.execute(f"SELECT {columns} FROM decisions").fetchone()
    assert stored is not None
    assert dict(zip(row, stored, strict=True)) == row


HOSTILE = [
    "it's",
    "back\\slash \\' \\\\",
    "E'x'); DROP TABLE decisions; --",
    '\\x00ff \\n \\u0041 $$ $q$ %s %(a)s {} "quoted"',
    "ünïcödé ✓ 漢字 \U0001f600",
]

#: The decision row's free-text columns.
TEXT_COLUMNS = (
    "tenant",
    "route",
    "unit_id",
    "policy_name",
    "experiment",
    "variant",
    "model",
    "prompt",
)


@pytest.mark.parametrize("keyed", [False, True], ids=["no-request-id", "request-id"])
@pytest.mark.parametrize("text", HOSTILE)
def test_decision_batches_round_trip_hostile_text_exactly(
    fresh_db_url: str, text: str, keyed: bool
) -> None:
    # Decision-only batches take the one-round-trip path, which renders values (and the
    # request ids' claims) as SQL literals: every character must arrive unchanged, nothing
    # may execute.
    row = decision_row(
        **dict.fromkeys(TEXT_COLUMNS, text),
        request_id=text if keyed else "",
        candidates=[text, "m2"],
        numeric_context={text: 1.5},
        categorical_context={text: text},
        shadow={text: {"model": text}},
        features=text.encode("utf-8"),
        propensity=float.fromhex("0x1.5555555555555p-2"),  # every bit must survive
    )

    async def scenario() -> int | None:
        async with GroupCommitWriter(fresh_db_url) as writer:
            return await writer.write_decision(row)

    event_id = run(scenario)
    columns = ", ".join(k for k in row)
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        stored = conn.execute(f"SELECT event_id, {columns} FROM decisions").fetchall()
        claims = conn.execute("SELECT tenant, request_id, decision_id FROM request_ids").fetchall()
    assert len(stored) == 1
    assert stored[0][0] == event_id
    assert dict(zip(row, stored[0][1:], strict=True)) == row
    assert claims == ([(text, text, row["decision_id"])] if keyed else [])


def test_decision_batch_gets_consecutive_ids_in_arrival_order(fresh_db_url: str) -> None:
    rows = [decision_row() for _ in range(40)]

    async def scenario() -> list[int | None]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=50)) as writer:
            return list(await asyncio.gather(*(writer.write_decision(r) for r in rows)))

    ids = run(scenario)
    assert all(isinstance(i, int) for i in ids)
    assert ids == list(range(ids[0], ids[0] + len(rows)))  # type: ignore[operator]
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        stored = dict(conn.execute("SELECT decision_id, event_id FROM decisions").fetchall())
    assert stored == {r["decision_id"]: i for r, i in zip(rows, ids, strict=True)}


def test_repeated_request_id_writes_one_decision(fresh_db_url: str) -> None:
    first = decision_row(request_id="req-1", tenant="t")
    same_batch = decision_row(request_id="req-1", tenant="t")
    later = decision_row(request_id="req-1", tenant="t")
    other_tenant = decision_row(request_id="req-1", tenant="u")

    async def scenario() -> list[int | None]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=50)) as writer:
            a, b = await asyncio.gather(
                writer.write_decision(first), writer.write_decision(same_batch)
            )
            c = await writer.write_decision(later)
            d = await writer.write_decision(other_tenant)
            return [a, b, c, d]

    a, b, c, d = run(scenario)
    assert isinstance(a, int) and b is None and c is None and isinstance(d, int)
    assert count(fresh_db_url, "decisions", request_id="req-1") == 2
    assert count(fresh_db_url, "request_ids", decision_id=first["decision_id"]) == 1


def test_outcome_statuses(fresh_db_url: str) -> None:
    decision = decision_row(tenant="acme")
    outcome = outcome_row(decision)

    async def scenario() -> dict[str, Any]:
        async with GroupCommitWriter(fresh_db_url) as writer:
            await writer.write_decision(decision)
            return {
                "first": await writer.write_outcome(outcome),
                "repeat": await writer.write_outcome(dict(outcome)),
                "different": await writer.write_outcome({**outcome, "quality": 0.1}),
                "unknown": await writer.write_outcome(outcome_row(decision_row())),
                "wrong_tenant": await writer.write_outcome({**outcome, "tenant": "evil"}),
                "right_tenant": await writer.write_outcome({**outcome, "tenant": "acme"}),
            }

    r = run(scenario)
    assert r["first"].status is WriteStatus.INSERTED and r["first"].tenant == "acme"
    assert r["repeat"].status is WriteStatus.DUPLICATE
    assert r["repeat"].event_id == r["first"].event_id
    assert r["repeat"].stored["reward"] == outcome["reward"]
    assert r["different"].status is WriteStatus.CONFLICT
    assert r["unknown"].status is WriteStatus.UNKNOWN_DECISION
    assert r["wrong_tenant"].status is WriteStatus.WRONG_TENANT
    assert r["right_tenant"].status is WriteStatus.DUPLICATE
    assert r["repeat"].raise_for_status() is r["repeat"]
    with pytest.raises(AlreadyExists):
        r["different"].raise_for_status()
    with pytest.raises(NotFound):
        r["unknown"].raise_for_status()
    with pytest.raises(PermissionDenied):
        r["wrong_tenant"].raise_for_status()
    assert count(fresh_db_url, "outcomes") == 1


def test_outcome_repeated_within_one_batch_is_written_once(fresh_db_url: str) -> None:
    decision = decision_row()
    outcome = outcome_row(decision)

    async def scenario() -> list[Any]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=50)) as writer:
            await writer.write_decision(decision)
            return await writer.write_outcomes([outcome, outcome, {**outcome, "quality": 0.2}])

    first, repeat, different = run(scenario)
    assert first.status is WriteStatus.INSERTED
    assert repeat.status is WriteStatus.DUPLICATE and repeat.event_id == first.event_id
    assert different.status is WriteStatus.CONFLICT and different.event_id == first.event_id
    assert count(fresh_db_url, "outcomes") == 1


def test_outcome_for_decision_in_the_same_batch_is_accepted(fresh_db_url: str) -> None:
    decision = decision_row()

    async def scenario() -> tuple[Any, Any]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=50)) as writer:
            return await asyncio.gather(
                writer.write_decision(decision), writer.write_outcome(outcome_row(decision))
            )

    decision_event, result = run(scenario)
    assert result.status is WriteStatus.INSERTED and result.event_id > decision_event


def test_feedback_statuses(fresh_db_url: str) -> None:
    decision = decision_row()
    rating = feedback_row(decision, feedback_key="fb-1", rating=0.5)

    async def scenario() -> list[Any]:
        async with GroupCommitWriter(fresh_db_url) as writer:
            await writer.write_decision(decision)
            return [
                await writer.write_feedback(rating),
                await writer.write_feedback(rating),
                await writer.write_feedback({**rating, "rating": 1.0}),
                await writer.write_feedback({**rating, "feedback_key": "fb-2"}),
                await writer.write_feedback(feedback_row(decision_row())),
                await writer.write_feedback({**rating, "tenant": "someone"}),
            ]

    first, repeat, changed, second_key, unknown, wrong = run(scenario)
    assert first.status is WriteStatus.INSERTED
    assert repeat.status is WriteStatus.DUPLICATE and repeat.event_id == first.event_id
    assert changed.status is WriteStatus.CONFLICT
    assert second_key.status is WriteStatus.INSERTED and second_key.event_id > first.event_id
    assert unknown.status is WriteStatus.UNKNOWN_DECISION
    assert wrong.status is WriteStatus.WRONG_TENANT
    assert count(fresh_db_url, "feedback") == 2


def test_rejected_row_does_not_fail_its_batch(fresh_db_url: str) -> None:
    good = [decision_row() for _ in range(5)]
    bad = decision_row(propensity=None)  # NOT NULL violation

    async def scenario() -> list[Any]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=50)) as writer:
            calls = [writer.write_decision(r) for r in [*good[:2], bad, *good[2:]]]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = run(scenario)
    assert isinstance(results[2], psycopg.errors.NotNullViolation)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2)
    assert count(fresh_db_url, "decisions") == 5


def test_unreachable_database_fails_start_with_unavailable() -> None:
    async def scenario() -> None:
        await GroupCommitWriter("postgresql://postgres@127.0.0.1:1/none").start()

    with pytest.raises(Unavailable):
        run(scenario)


def _terminate_writer_backends(url: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'banditroute-writer' AND datname = current_database()"
        ).fetchall()
    return len(rows)


def test_lost_connection_answers_unavailable_and_writer_reconnects(fresh_db_url: str) -> None:
    lost = decision_row()
    after = decision_row()

    async def scenario() -> tuple[BaseException | None, int | None]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(backoff_initial_s=0.01)) as writer:
            await writer.write_decision(decision_row())
            assert _terminate_writer_backends(fresh_db_url) == 1
            error: BaseException | None = None
            try:
                await writer.write_decision(lost)
            except Unavailable as exc:
                error = exc
            for _ in range(500):  # the writer reconnects by itself
                if writer.healthy:
                    try:
                        return error, await writer.write_decision(after)
                    except Unavailable:
                        pass
                await asyncio.sleep(0.02)
            return error, None

    error, event_id = run(scenario)
    assert isinstance(error, Unavailable)
    assert count(fresh_db_url, "decisions", decision_id=lost["decision_id"]) == 0
    assert isinstance(event_id, int)
    assert count(fresh_db_url, "decisions", decision_id=after["decision_id"]) == 1


def test_full_queue_answers_resource_exhausted(fresh_db_url: str) -> None:
    decision = decision_row()

    async def scenario() -> None:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(max_pending_rows=2)) as writer:
            await writer.write_decision(decision)
            await writer.write_outcomes([outcome_row(decision)] * 3)

    with pytest.raises(ResourceExhausted):
        run(scenario)
    assert count(fresh_db_url, "outcomes") == 0


def test_close_flushes_every_pending_write(fresh_db_url: str) -> None:
    rows = [decision_row() for _ in range(300)]

    async def scenario() -> list[Any]:
        writer = await GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=1000)).start()
        tasks = [asyncio.ensure_future(writer.write_decision(r)) for r in rows]
        await asyncio.sleep(0)
        await writer.close()
        return await asyncio.gather(*tasks)

    results = run(scenario)
    assert all(isinstance(r, int) for r in results)
    assert count(fresh_db_url, "decisions") == len(rows)


def test_event_ids_become_visible_in_order_with_two_writers(fresh_db_url: str) -> None:
    """A follower reading outcomes ``event_id > last seen`` while two writers commit outcomes
    (and decisions, which take their ids without the event-log lock) misses nothing."""
    decisions = [decision_row() for _ in range(400)]
    fresh = [decision_row() for _ in range(400)]
    seen: set[int] = set()

    async def follower(stop: asyncio.Event) -> None:
        last = 0
        async with await psycopg.AsyncConnection.connect(
            libpq_url(fresh_db_url), autocommit=True
        ) as conn:
            while True:
                done = stop.is_set()
                cursor = await conn.execute(
                    "SELECT event_id FROM outcomes WHERE event_id > %s ORDER BY event_id", (last,)
                )
                ids = [r[0] for r in await cursor.fetchall()]
                seen.update(ids)
                last = max([last, *ids])
                if done:
                    return
                await asyncio.sleep(0)

    async def writer_task(rows: list[dict[str, Any]], more: list[dict[str, Any]]) -> None:
        async with GroupCommitWriter(
            fresh_db_url, WriterLimits(flush_ms=0.5, batch_max_rows=7)
        ) as writer:
            for i in range(0, len(rows), 10):
                await asyncio.gather(
                    *(writer.write_outcome(outcome_row(r)) for r in rows[i : i + 10]),
                    *(writer.write_decision(r) for r in more[i : i + 10]),
                )

    async def scenario() -> None:
        async with GroupCommitWriter(fresh_db_url) as writer:
            await asyncio.gather(*(writer.write_decision(r) for r in decisions))
        stop = asyncio.Event()
        follow = asyncio.create_task(follower(stop))
        await asyncio.gather(
            writer_task(decisions[::2], fresh[::2]), writer_task(decisions[1::2], fresh[1::2])
        )
        stop.set()
        await follow

    run(scenario)
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        committed = {r[0] for r in conn.execute("SELECT event_id FROM outcomes").fetchall()}
        decision_ids = {r[0] for r in conn.execute("SELECT event_id FROM decisions").fetchall()}
    assert len(committed) == len(decisions)
    assert seen == committed
    assert len(decision_ids) == len(decisions) + len(fresh)
    assert not decision_ids & committed  # one sequence: no id twice


def test_outcome_writes_notify_the_events_channel(fresh_db_url: str) -> None:
    async def scenario() -> list[str]:
        async with await psycopg.AsyncConnection.connect(
            libpq_url(fresh_db_url), autocommit=True
        ) as listener:
            await listener.execute("LISTEN banditroute_events")
            async with GroupCommitWriter(fresh_db_url) as writer:
                decision = decision_row()
                await writer.write_decision(decision)  # teaches nothing: no NOTIFY
                result = await writer.write_outcome(outcome_row(decision))
            payloads = [n.payload async for n in listener.notifies(timeout=10, stop_after=1)]
            return [*payloads, str(result.event_id)]

    *payloads, event_id = run(scenario)
    assert payloads == [event_id]


def test_outcome_ids_are_uuid_and_decision_must_match_partition_key(fresh_db_url: str) -> None:
    decision = decision_row()
    shifted = {
        **outcome_row(decision),
        "decision_created_at": decision["created_at"].replace(year=2020),
    }

    async def scenario() -> Any:
        async with GroupCommitWriter(fresh_db_url) as writer:
            await writer.write_decision(decision)
            return await writer.write_outcome(shifted)

    assert run(scenario).status is WriteStatus.UNKNOWN_DECISION
    assert isinstance(decision["decision_id"], uuid.UUID)


def test_unadaptable_row_fails_alone_and_writer_keeps_working(fresh_db_url: str) -> None:
    good = [decision_row() for _ in range(3)]
    bad = decision_row(features=object())  # psycopg cannot adapt it: a caller bug

    async def scenario() -> tuple[list[Any], int | None]:
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=50)) as writer:
            calls = [writer.write_decision(r) for r in [good[0], bad, *good[1:]]]
            results = await asyncio.gather(*calls, return_exceptions=True)
            return results, await writer.write_decision(decision_row())

    results, after = run(scenario)
    assert isinstance(results[1], Exception) and not isinstance(results[1], Unavailable)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 1)
    assert isinstance(after, int)
    assert count(fresh_db_url, "decisions") == 4


def test_incomplete_rows_are_refused_before_queueing(fresh_db_url: str) -> None:
    decision = decision_row()

    async def scenario() -> None:
        async with GroupCommitWriter(fresh_db_url) as writer:
            with pytest.raises(ValueError, match="reward"):
                await writer.write_outcome({**outcome_row(decision), "reward": None})
            with pytest.raises(ValueError, match="feedback_key"):
                await writer.write_feedback({**feedback_row(decision), "feedback_key": None})
            with pytest.raises(ValueError, match="model"):
                await writer.write_decision({k: v for k, v in decision.items() if k != "model"})
            assert writer.pending_rows == 0

    run(scenario)


def test_idle_writer_commits_a_waited_write_at_once_and_queued_decisions_wait_the_window(
    fresh_db_url: str,
) -> None:
    window = 1.0  # s: far longer than a commit, even on a loaded machine

    async def scenario() -> tuple[float, bool, float]:
        loop = asyncio.get_running_loop()
        async with GroupCommitWriter(fresh_db_url, WriterLimits(flush_ms=window * 1000)) as w:
            await asyncio.sleep(window)  # idle for a whole window
            started = loop.time()
            await w.write_decision(decision_row())  # awaited: committed at once
            waited_alone = loop.time() - started
            queued = w.submit_decision(decision_row())  # nobody waits: gathers a window
            await asyncio.sleep(window / 4)
            queued_done_early = queued.done()
            started = loop.time()
            await w.write_decision(decision_row())  # within the window of the last commit
            waited_in_window = loop.time() - started
            assert queued.done()  # committed with it
            return waited_alone, queued_done_early, waited_in_window

    waited_alone, queued_done_early, waited_in_window = run(scenario)
    assert waited_alone < window / 2
    assert not queued_done_early
    assert waited_in_window >= window / 4  # the rest of the window after the last commit
    assert count(fresh_db_url, "decisions") == 3
