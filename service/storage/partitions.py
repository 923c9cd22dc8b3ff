"""Monthly partitions of ``decisions`` (UTC months) and retention.

``decisions`` is partitioned by range of ``created_at``: one partition per month named
``decisions_yYYYYmMM`` plus ``decisions_default`` for anything without one. Run
``banditroute db maintain`` daily (``serve`` and ``db upgrade`` run it too): it creates the
partitions of the current and the next months, moving rows that landed in the default
partition, and with ``--retention-days N`` drops whole months older than N days together with
their outcomes, feedback and request ids. Dropping a partition is instant and leaves no bloat.

Examples
--------
>>> from datetime import date
>>> partition_name(date(2026, 11, 1))
'decisions_y2026m11'
>>> month_start(date(2026, 12, 31)), add_months(date(2026, 12, 1), 1)
(datetime.date(2026, 12, 1), datetime.date(2027, 1, 1))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection

__all__ = [
    "DEFAULT_PARTITION",
    "PARTITION_LOCK_KEY",
    "RetentionResult",
    "add_months",
    "apply_retention",
    "ensure_decision_partitions",
    "list_decision_partitions",
    "month_start",
    "partition_name",
]

DEFAULT_PARTITION = "decisions_default"
#: Advisory lock serialising partition maintenance ("banditrt" + 2).
PARTITION_LOCK_KEY = 0x62616E6469747274 + 2
_NAME = re.compile(r"^decisions_y(\d{4})m(\d{2})$")


def month_start(day: date) -> date:
    """First day of ``day``'s month."""
    return day.replace(day=1)


def add_months(first: date, months: int) -> date:
    """First day of the month ``months`` after ``first``'s month."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def partition_name(first: date) -> str:
    """Name of the partition holding the month starting at ``first``."""
    return f"decisions_y{first.year:04d}m{first.month:02d}"


def _bound(first: date) -> str:
    return f"'{first.isoformat()} 00:00:00+00'"


def list_decision_partitions(conn: Connection) -> list[date]:
    """Return the first days of the months that have a partition, oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'decisions'::regclass"
        )
    ).scalars()
    months = []
    for name in rows:
        match = _NAME.match(name)
        if match:
            months.append(date(int(match[1]), int(match[2]), 1))
    return sorted(months)


def ensure_decision_partitions(
    conn: Connection, now: datetime | None = None, months_ahead: int = 2
) -> list[str]:
    """Create the partitions of the current month and ``months_ahead`` next ones.

    Rows of those months already in the default partition are moved into the new partition
    in the same transaction. Returns the names of the partitions created.
    """
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    # concurrent starts (replicas, workers) must not race to create the same partition
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})
    existing = set(list_decision_partitions(conn))
    created = []
    for offset in range(months_ahead + 1):
        first = add_months(month_start(today), offset)
        if first in existing:
            continue
        _create_partition(conn, first)
        created.append(partition_name(first))
    return created


def _create_partition(conn: Connection, first: date) -> None:
    name = partition_name(first)
    lo, hi = _bound(first), _bound(add_months(first, 1))
    in_default = conn.execute(
        text(
            f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} "
            f"WHERE created_at >= {lo} AND created_at < {hi})"
        )
    ).scalar_one()
    if not in_default:
        conn.execute(
            text(f"CREATE TABLE {name} PARTITION OF decisions FOR VALUES FROM ({lo}) TO ({hi})")
        )
        return
    conn.execute(text(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(text(f"CREATE TABLE {name} (LIKE decisions INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
            f"WHERE created_at >= {lo} AND created_at < {hi} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        )
    )
    conn.execute(
        text(f"ALTER TABLE decisions ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")
    )


@dataclass(frozen=True)
class RetentionResult:
    """What :func:`apply_retention` removed."""

    cutoff: datetime
    dropped_partitions: list[str]
    deleted_outcomes: int
    deleted_feedback: int


def apply_retention(
    conn: Connection, retention_days: int, now: datetime | None = None
) -> RetentionResult:
    """Drop months whose every decision is older than ``retention_days``, with their events.

    Whole partitions are dropped (a month is kept until its last day is past the cutoff);
    matching outcomes, feedback and request ids are deleted, as are default-partition rows
    older than the cutoff. Policies keep what they learned through their snapshots, but a
    rebuild from scratch afterwards only sees the retained events.
    """
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, got {retention_days}")
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PARTITION_LOCK_KEY})
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - timedelta(days=retention_days)
    dropped = []
    for first in list_decision_partitions(conn):
        end = add_months(first, 1)
        if datetime(end.year, end.month, end.day, tzinfo=UTC) <= cutoff:
            conn.execute(text(f"DROP TABLE {partition_name(first)}"))
            dropped.append(partition_name(first))
    params = {"cutoff": cutoff}
    conn.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < :cutoff"), params)
    orphan = (
        "DELETE FROM {table} e WHERE e.decision_created_at < :cutoff AND NOT EXISTS "
        "(SELECT 1 FROM decisions d WHERE d.decision_id = e.decision_id "
        "AND d.created_at = e.decision_created_at)"
    )
    outcomes = conn.execute(text(orphan.format(table="outcomes")), params).rowcount
    feedback = conn.execute(text(orphan.format(table="feedback")), params).rowcount
    conn.execute(
        text(
            "DELETE FROM request_ids r WHERE r.created_at < :cutoff AND NOT EXISTS "
            "(SELECT 1 FROM decisions d WHERE d.decision_id = r.decision_id "
            "AND d.created_at = r.created_at)"
        ),
        params,
    )
    return RetentionResult(cutoff, dropped, outcomes, feedback)
