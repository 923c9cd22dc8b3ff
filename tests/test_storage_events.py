"""Reading the event log: order, joined decision context, history as of each event, LISTEN."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import psycopg

from banditroute.service.config import libpq_url
from banditroute.service.storage.database import create_engine
from banditroute.service.storage.events import (
    Listener,
    iter_events,
    last_event_id,
    read_events,
    read_events_async,
)
from banditroute.service.storage.models import EVENTS_CHANNEL
from banditroute.service.storage.writer import GroupCommitWriter
from tests.helpers import decision_row, feedback_row, outcome_row


def _write(url: str, steps: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async def scenario() -> list[Any]:
        results = []
        async with GroupCommitWriter(url) as writer:
            for kind, row in steps:
                method = {
                    "d": writer.write_decision,
                    "o": writer.write_outcome,
                    "f": writer.write_feedback,
                }[kind]
                results.append(await method(row))
        return results

    return asyncio.run(scenario())


def test_events_come_in_id_order_with_their_context(fresh_db_url: str) -> None:
    features = np.array([0.1, -2.5, 1e-300, 3.0], dtype="<f8")
    d1 = decision_row(features=features.tobytes(), model="m2", tenant="acme", variant="b")
    d2 = decision_row()
    results = _write(
        fresh_db_url,
        [
            ("d", d1),
            ("d", d2),
            ("f", feedback_row(d1, feedback_key="early", rating=0.0)),  # before the outcome
            ("o", outcome_row(d1, quality=0.9, reward=0.8)),
            ("f", feedback_row(d1, feedback_key="late", rating=1.0)),
            ("o", outcome_row(d2)),
        ],
    )
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        events = read_events(conn, 0)
        tail = read_events(conn, events[1].event_id, limit=2)
        assert last_event_id(conn) == results[-1].event_id
    assert [e.event_id for e in events] == [r.event_id for r in results[2:]]
    assert [e.kind for e in events] == ["feedback", "outcome", "feedback", "outcome"]
    early, outcome, late, other = events
    assert early.outcome_event_id is None and early.prior_ratings == ()
    assert outcome.prior_ratings == (0.0,) and outcome.reward == 0.8
    assert late.outcome_event_id == outcome.event_id and late.quality == 0.9
    assert late.prior_ratings == (0.0,) and late.rating == 1.0
    assert (late.tenant, late.model, late.variant) == ("acme", "m2", "b")
    assert late.features is not None and late.features.tobytes() == features.tobytes()
    assert other.decision_id == d2["decision_id"]
    assert [e.event_id for e in tail] == [late.event_id, other.event_id]


def test_read_events_async_matches_sync(fresh_db_url: str) -> None:
    d = decision_row()
    _write(fresh_db_url, [("d", d), ("o", outcome_row(d)), ("f", feedback_row(d))])

    async def read() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(libpq_url(fresh_db_url)) as conn:
            return await read_events_async(conn, 0)

    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        expected = read_events(conn, 0)
    got = asyncio.run(read())
    assert [(e.event_id, e.kind, e.reward) for e in got] == [
        (e.event_id, e.kind, e.reward) for e in expected
    ]


def test_read_events_on_a_sqlalchemy_connection_matches_psycopg(fresh_db_url: str) -> None:
    d1, d2 = decision_row(), decision_row(shadow={"lin@2": {"model": "m2"}})
    _write(
        fresh_db_url,
        [
            ("d", d1),
            ("d", d2),
            ("o", outcome_row(d1)),
            ("f", feedback_row(d2)),
            ("o", outcome_row(d2)),
        ],
    )
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        expected = read_events(conn, 0)
    engine = create_engine(fresh_db_url)
    try:
        with engine.connect() as sa_conn:
            got = read_events(sa_conn, 0)
            paged = list(iter_events(sa_conn, 0, page_size=1))
            upto = list(iter_events(sa_conn, 0, upto=expected[1].event_id, page_size=2))
    finally:
        engine.dispose()

    def summary(e: Any) -> tuple[Any, ...]:
        return (e.event_id, e.kind, e.features.tobytes(), e.prior_ratings, e.quality)

    assert [summary(e) for e in got] == [summary(e) for e in expected]
    assert [e.event_id for e in paged] == [e.event_id for e in expected]
    assert [e.event_id for e in upto] == [e.event_id for e in expected[:2]]
    assert got[1].shadow == {"lin@2": {"model": "m2"}} and got[1].prior_ratings == ()


def test_listener_wakes_on_the_commit_of_an_outcome_not_of_a_decision(fresh_db_url: str) -> None:
    async def scenario() -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
        async with Listener(fresh_db_url) as listener:
            await listener.wait(5.0)  # the (re)connect wake-up
            async with GroupCommitWriter(fresh_db_url) as writer:
                decision = decision_row()
                await writer.write_decision(decision)
                after_decision = await listener.wait(0.5)
                result = await writer.write_outcome(outcome_row(decision))
            got = await listener.wait(10.0)
            return after_decision, got, result.event_id

    after_decision, received, outcome_id = asyncio.run(scenario())
    assert after_decision == []
    assert (EVENTS_CHANNEL, str(outcome_id)) in received


def test_listener_wakes_when_its_connection_is_lost_and_listens_again(fresh_db_url: str) -> None:
    async def scenario() -> tuple[bool, list[tuple[str, str]], bool, list[tuple[str, str]]]:
        async with Listener(fresh_db_url) as listener:
            await listener.wait(5.0)  # the connect wake-up
            was_connected = listener.connected
            with psycopg.connect(libpq_url(fresh_db_url), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'banditroute-listener' "
                    "AND datname = current_database()"
                )
            lost = await listener.wait(5.0)
            for _ in range(100):  # reconnects by itself
                if listener.connected:
                    break
                await listener.wait(0.05)
            async with GroupCommitWriter(fresh_db_url) as writer:
                decision = decision_row()
                await writer.write_decision(decision)
                await writer.write_outcome(outcome_row(decision))
            got: list[tuple[str, str]] = []
            for _ in range(20):
                got += await listener.wait(0.5)
                if any(channel == EVENTS_CHANNEL for channel, _ in got):
                    break
            return was_connected, lost, listener.connected, got

    was_connected, lost, connected_again, received = asyncio.run(scenario())
    assert was_connected and connected_again
    assert ("", "") in lost
    assert any(channel == EVENTS_CHANNEL for channel, _ in received)
