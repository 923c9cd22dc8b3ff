"""Snapshots of this process's learned state: restored at start, saved as the log advances.

After ``every`` learning events a policy's state (``banditroute.learners.state.dumps``) is saved
with its log position, and the cost model's with it; idle policies are saved too, after ten
times as many events of the log, so a restart never replays the whole log just to position a
policy that learned nothing. On start every policy is restored from its latest snapshot and
the follower replays the later events, giving a state bit-identical to a rebuild from the whole
log (:func:`banditroute.service.core.rebuild.rebuild_policy`). Table access is in
:mod:`banditroute.service.storage.snapshots`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine

from banditroute.learners import state as policy_state
from banditroute.learners.base import Policy
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.config_cache import ConfigSnapshot
from banditroute.service.core.cost_learning import CostLearner
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.storage.snapshots import (
    COST_MODEL_SNAPSHOT,
    Snapshot,
    latest_snapshot,
    save_snapshots,
)

__all__ = ["PolicySnapshots"]

log = logging.getLogger(__name__)


@dataclass
class PolicySnapshots:
    """Restores and saves the snapshots of ``registry``'s policies and of ``cost``.

    Parameters
    ----------
    engine
        Where ``policy_snapshots`` is read at start and written as the log advances.
    registry
        Whose policies are restored and saved.
    cost
        The cost model, saved with them.
    every
        Learning events of a policy between two snapshots (0 disables saving).
    keep
        Snapshots kept per policy version.
    """

    engine: Engine
    registry: PolicyRegistry
    cost: CostLearner
    every: int = 10_000
    keep: int = 3

    def restore(self, config: ConfigSnapshot) -> dict[PolicyKey, tuple[int, Policy]]:
        """Latest snapshot of each policy version of ``config`` not live yet, as ``(position,
        policy)``; restores the cost model in place. An unreadable snapshot is skipped (the
        policy is rebuilt from the log), and so is one whose resolved hyperparameters are not
        what this release builds for the version: a release that changed a default would
        otherwise go on from a state the log no longer rebuilds. Blocking: run it in a
        thread."""
        out: dict[PolicyKey, tuple[int, Policy]] = {}
        with self.engine.connect() as conn:
            for key in config.policies:
                if key in self.registry:
                    continue
                snap = latest_snapshot(conn, key.name, key.version)
                if snap is None:
                    continue
                try:
                    policy = policy_state.loads(snap.state)
                except Exception:
                    log.warning("snapshot of %s@%s unreadable; rebuilding", *key)
                    continue
                current = config.policies[key].build(["probe"], policy.dim).hyperparameters
                if policy.hyperparameters != current:
                    log.info("snapshot of %s@%s was learnt with other hyperparameter defaults "
                             "(an earlier release); rebuilding", *key)
                    continue
                out[key] = (snap.last_event_id, policy)
            cost = latest_snapshot(conn, COST_MODEL_SNAPSHOT, 0)
            if cost is not None:
                try:
                    self.cost.restore(cost.state, cost.last_event_id)
                except Exception:
                    log.warning("cost model snapshot unreadable; relearning")
        return out

    async def save_due(self, position: int) -> None:
        """Save the policies that learned ``every`` events since their last snapshot (and the
        cost model, at ``position``, with them). A failure is logged: the next one retries."""
        if self.every <= 0:
            return
        due = []
        for key in self.registry.policy_keys():
            live = self.registry.get(key)
            if live is not None and (
                live.since_snapshot >= self.every or live.seen_since_snapshot >= 10 * self.every
            ):
                due.append(key)
        if due:
            snaps = [
                *self._take(due),
                Snapshot(COST_MODEL_SNAPSHOT, 0, position, self.cost.model.dumps()),
            ]
            try:
                await asyncio.to_thread(self._save, snaps)
            except Exception as exc:
                log.warning("could not save policy snapshots: %s", type(exc).__name__)

    def _take(self, keys: Iterable[PolicyKey]) -> list[Snapshot]:
        snaps = []
        for key in keys:
            live = self.registry.get(key)
            if live is not None:
                state = policy_state.dumps(live.policy)
                snaps.append(Snapshot(key.name, key.version, live.last_event_id, state))
                live.since_snapshot = live.seen_since_snapshot = 0
        return snaps

    def _save(self, snaps: Iterable[Snapshot]) -> None:
        with self.engine.begin() as conn:
            save_snapshots(conn, snaps, self.keep)
