"""A policy version rebuilt from the whole event log: the reference for restored state.

A process restores a policy from its latest snapshot and replays the later events; the result
must equal, byte for byte (``banditroute.learners.state.dumps``), a rebuild from every event of
the log. The follower and this rebuild read the log through the same reader and apply events
through the same functions (:mod:`banditroute.service.core.log_events`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Engine

from banditroute.learners.base import Policy
from banditroute.service.core.log_events import apply_event, decision_of
from banditroute.service.core.policies import DecisionEvents, PolicyRegistry, PolicySpec
from banditroute.service.storage.events import iter_events

__all__ = ["rebuild_policy"]


def rebuild_policy(
    engine: Engine, spec: PolicySpec, arms: Sequence[str], dim: int, upto: int | None = None
) -> Policy:
    """Rebuild one policy version from the whole log (no snapshot), up to event ``upto``.

    ``arms`` are its initial arms (``ConfigSnapshot.initial_arms(spec)``). This is the
    reference a restored policy must equal byte for byte.
    """
    registry = PolicyRegistry(dim)
    live = registry.ensure(spec, arms, last_event_id=0)
    decisions: dict[uuid.UUID, DecisionEvents] = {}
    with engine.connect() as conn:
        for event in iter_events(conn, 0, upto=upto):
            item = decisions.get(event.decision_id)
            if item is None:
                item = decision_of(event)
                if item is None or spec.key not in (item.key, *item.shadows):
                    continue  # decision removed by retention, or not this policy's
                decisions[event.decision_id] = item
            apply_event(registry, item, event)
    return live.policy
