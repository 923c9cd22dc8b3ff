"""``policy_snapshots``: saved learned state, so a restart replays only the log's tail.

A snapshot is the serialized state of one policy version (``banditroute.learners.state.dumps``)
together with ``last_event_id``, the log position it includes. Only the latest ``keep``
snapshots of a policy version are kept. The cost model is stored under the reserved name
:data:`COST_MODEL_SNAPSHOT` (version 0).

Examples
--------
>>> from banditroute.service.storage.database import create_engine  # doctest: +SKIP
>>> with create_engine(url).begin() as conn:  # doctest: +SKIP
...     save_snapshots(conn, [Snapshot("default", 1, 42, b"...")], keep=3)
...     latest_snapshot(conn, "default", 1)
Snapshot(name='default', version=1, last_event_id=42, state=b'...')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import Connection, text

__all__ = ["COST_MODEL_SNAPSHOT", "Snapshot", "latest_snapshot", "save_snapshots"]

#: Name under which the cost model's state is stored (version 0).
COST_MODEL_SNAPSHOT = "__cost_model__"

_LATEST_SQL = text(
    """
    SELECT last_event_id, state FROM policy_snapshots
     WHERE policy_name = :name AND policy_version = :version
     ORDER BY last_event_id DESC LIMIT 1
    """
)
_SAVE_SQL = text(
    """
    INSERT INTO policy_snapshots (policy_name, policy_version, last_event_id, state)
    VALUES (:name, :version, :last_event_id, :state)
    ON CONFLICT DO NOTHING
    """
)
_PRUNE_SQL = text(
    """
    DELETE FROM policy_snapshots
     WHERE policy_name = :name AND policy_version = :version AND last_event_id < (
       SELECT min(last_event_id) FROM (
         SELECT last_event_id FROM policy_snapshots
          WHERE policy_name = :name AND policy_version = :version
          ORDER BY last_event_id DESC LIMIT :keep) k)
    """
)


class Snapshot(NamedTuple):
    """The state of policy ``name@version`` after every event up to ``last_event_id``."""

    name: str
    version: int
    last_event_id: int
    state: bytes


def latest_snapshot(conn: Connection, name: str, version: int) -> Snapshot | None:
    """The newest snapshot of ``name@version``, or None."""
    row = conn.execute(_LATEST_SQL, {"name": name, "version": version}).first()
    if row is None:
        return None
    return Snapshot(name, version, int(row.last_event_id), bytes(row.state))


def save_snapshots(conn: Connection, snapshots: Iterable[Snapshot], keep: int) -> None:
    """Store ``snapshots`` (a repeat of a stored position is ignored), keeping the newest
    ``keep`` of each policy version. Runs in the caller's transaction."""
    for snap in snapshots:
        key = {"name": snap.name, "version": snap.version}
        conn.execute(_SAVE_SQL, {**key, "last_event_id": snap.last_event_id, "state": snap.state})
        conn.execute(_PRUNE_SQL, {**key, "keep": keep})
