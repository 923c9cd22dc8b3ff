"""Monthly partitions of decisions: creation ahead, rows moved out of DEFAULT, retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from banditroute.service.storage.database import create_engine
from banditroute.service.storage.ids import decision_created_at, new_decision_id
from banditroute.service.storage.partitions import (
    apply_retention,
    ensure_decision_partitions,
    list_decision_partitions,
)
from banditroute.service.storage.writer import GroupCommitWriter
from tests.helpers import decision_row, feedback_row, outcome_row


def _decision_at(at: datetime) -> dict[str, Any]:
    decision_id = new_decision_id(at)
    return decision_row(decision_id=decision_id, created_at=decision_created_at(decision_id))


def _write(url: str, decisions: list[dict[str, Any]], with_events: bool = True) -> None:
    async def scenario() -> None:
        async with GroupCommitWriter(url) as writer:
            for d in decisions:
                await writer.write_decision(d)
                if with_events:
                    (await writer.write_outcome(outcome_row(d))).raise_for_status()
                    (await writer.write_feedback(feedback_row(d))).raise_for_status()

    asyncio.run(scenario())


def _partition_of(url: str, decision: dict[str, Any]) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(
                conn.execute(
                    text("SELECT tableoid::regclass::text FROM decisions WHERE decision_id = :d"),
                    {"d": decision["decision_id"]},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_rows_in_default_partition_move_to_the_new_month(fresh_db_url: str) -> None:
    future = _decision_at(datetime(2031, 5, 20, 12, tzinfo=UTC))
    _write(fresh_db_url, [future], with_events=False)
    assert _partition_of(fresh_db_url, future) == "decisions_default"
    engine = create_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            created = ensure_decision_partitions(conn, now=datetime(2031, 5, 1, tzinfo=UTC))
            assert ensure_decision_partitions(conn, now=datetime(2031, 5, 2, tzinfo=UTC)) == []
    finally:
        engine.dispose()
    assert created == ["decisions_y2031m05", "decisions_y2031m06", "decisions_y2031m07"]
    assert _partition_of(fresh_db_url, future) == "decisions_y2031m05"


def test_retention_drops_whole_old_months_and_their_events(fresh_db_url: str) -> None:
    engine = create_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            ensure_decision_partitions(conn, now=datetime(2020, 1, 10, tzinfo=UTC))
        january = _decision_at(datetime(2020, 1, 15, tzinfo=UTC))
        february = _decision_at(datetime(2020, 2, 10, tzinfo=UTC))
        _write(fresh_db_url, [january, february])
        with engine.begin() as conn:
            result = apply_retention(conn, 20, now=datetime(2020, 2, 25, tzinfo=UTC))
            months = list_decision_partitions(conn)
            left = conn.execute(text("SELECT count(*) FROM decisions")).scalar_one()
            outcomes = conn.execute(text("SELECT count(*) FROM outcomes")).scalar_one()
            feedback = conn.execute(text("SELECT count(*) FROM feedback")).scalar_one()
        with engine.begin() as conn, pytest.raises(ValueError, match="retention_days"):
            apply_retention(conn, 0)
    finally:
        engine.dispose()
    assert result.dropped_partitions == ["decisions_y2020m01"]
    assert (result.deleted_outcomes, result.deleted_feedback) == (1, 1)
    assert all(m.year > 2020 or m.month >= 2 for m in months)
    assert (left, outcomes, feedback) == (1, 1, 1)  # February's decision is kept


def test_concurrent_maintenance_creates_each_partition_once(fresh_db_url: str) -> None:
    import threading

    engine = create_engine(fresh_db_url)
    created: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def maintain() -> None:
        try:
            barrier.wait()
            with engine.begin() as conn:
                created.append(
                    ensure_decision_partitions(
                        conn, now=datetime(2040, 1, 1, tzinfo=UTC), months_ahead=6
                    )
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=maintain) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert errors == []
    assert sorted(len(c) for c in created) == [0, 0, 7]
