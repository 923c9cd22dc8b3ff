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


def test_a_snapshot_learnt_with_other_hyperparameter_defaults_is_rebuilt(
    fresh_db_url: str,
) -> None:
    """A release that changes a default (here ``fit_group_ridge``) must not go on from a
    snapshot the log no longer rebuilds: restore skips it, and the policy is rebuilt."""
    from banditroute.learners import LinUCB
    from banditroute.learners import state as policy_state
    from banditroute.service.core.config_cache import ConfigSnapshot
    from banditroute.service.core.cost_learning import CostLearner
    from banditroute.service.core.policies import PolicyRegistry, PolicySpec
    from banditroute.service.core.snapshots import PolicySnapshots

    current = PolicySpec("linucb", name="same", version=1)
    changed = PolicySpec("linucb", name="older", version=1)
    engine = create_engine(fresh_db_url)
    try:
        with engine.begin() as conn:
            for spec, policy in (
                (current, LinUCB(["a", "b"], dim=8)),
                (changed, LinUCB(["a", "b"], dim=8, fit_group_ridge=False)),
            ):
                state = policy_state.dumps(policy.update([0.1] * 8, "a", 1.0))
                save_snapshots(conn, [Snapshot(spec.name, spec.version, 12, state)], keep=2)
        config = ConfigSnapshot(policies={current.key: current, changed.key: changed})
        snapshots = PolicySnapshots(engine, PolicyRegistry(8), CostLearner(8))
        restored = snapshots.restore(config)
    finally:
        engine.dispose()
    assert set(restored) == {current.key}
    position, policy = restored[current.key]
    assert position == 12 and policy.summary()["a"]["updates"] == 1
