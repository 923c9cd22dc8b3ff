"""Policy snapshots: the latest one per policy version, older ones pruned."""

from __future__ import annotations

from banditroute.service.storage.database import create_engine
from banditroute.service.storage.snapshots import Snapshot, latest_snapshot, save_snapshots


def test_latest_snapshot_wins_and_only_keep_are_kept(fresh_db_url: str) -> None:
    engine = create_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            for last in (10, 30, 20):
                save_snapshots(conn, [Snapshot("p", 1, last, f"s{last}".encode())], keep=2)
            save_snapshots(conn, [Snapshot("p", 2, 5, b"other version")], keep=2)
            save_snapshots(conn, [Snapshot("p", 1, 30, b"repeat ignored")], keep=2)
        with engine.connect() as conn:
            assert latest_snapshot(conn, "p", 1) == Snapshot("p", 1, 30, b"s30")
            assert latest_snapshot(conn, "p", 2) == Snapshot("p", 2, 5, b"other version")
            assert latest_snapshot(conn, "q", 1) is None
            kept = conn.exec_driver_sql(
                "SELECT last_event_id FROM policy_snapshots WHERE policy_name = 'p' "
                "AND policy_version = 1 ORDER BY 1"
            ).scalars()
            assert list(kept) == [20, 30]
    finally:
        engine.dispose()
