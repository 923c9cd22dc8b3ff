"""Events of the log as the policies learn from them.

The storage reader (:func:`banditroute.service.storage.events.read_events`) returns each outcome
and feedback with its decision and the decision's history before it. Here that becomes what
:class:`~banditroute.service.core.policies.PolicyRegistry` applies: the decision's
:class:`~banditroute.service.core.policies.DecisionEvents` (kept across its events) and the
event's own outcome or rating. The follower and a rebuild from scratch both go through
:func:`decision_of` and :func:`apply_event`, so they learn identically.
"""

from __future__ import annotations

from typing import Any

from banditroute.learners.features import context_group
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.policies import (
    DecisionEvents,
    OutcomeFacts,
    PolicyRegistry,
    reward_of,
)
from banditroute.service.storage.events import LearningEvent

__all__ = ["apply_event", "decision_of", "outcome_of", "parse_shadow_keys", "seed_rewards"]


def parse_shadow_keys(shadow: dict[str, Any] | None) -> tuple[PolicyKey, ...]:
    """Policy keys of a ``decisions.shadow`` document (``{"name@version": {...}}``).

    >>> parse_shadow_keys({"lin@2": {"model": "a"}, "bad": {}})
    (PolicyKey(name='lin', version=2),)
    """
    keys: list[PolicyKey] = []
    for k in shadow or {}:
        name, sep, version = str(k).rpartition("@")
        if sep and name and version.isdigit():
            keys.append(PolicyKey(name, int(version)))
    return tuple(keys)


def outcome_of(event: LearningEvent) -> OutcomeFacts:
    """The outcome fields an event carries (its own, or its decision's earlier outcome)."""
    return OutcomeFacts(
        quality=None if event.quality is None else float(event.quality),
        success=event.success,
        error=bool(event.error),
        cost_usd=0.0 if event.cost_usd is None else float(event.cost_usd),
        latency_ms=None if event.latency_ms is None else float(event.latency_ms),
    )


def decision_of(event: LearningEvent) -> DecisionEvents | None:
    """The decision of ``event`` with the outcome and ratings that came before the event in
    the log (None when retention removed the decision). Rewards are not filled in: see
    :func:`seed_rewards`."""
    if (
        event.features is None
        or event.model is None
        or event.policy_name is None
        or event.policy_version is None
    ):
        return None
    earlier_outcome = event.kind == "feedback" and event.outcome_event_id is not None
    return DecisionEvents(
        key=PolicyKey(event.policy_name, int(event.policy_version)),
        model=event.model,
        features=event.features,
        shadows=parse_shadow_keys(event.shadow),
        outcome=outcome_of(event) if earlier_outcome else None,
        ratings=[float(r) for r in event.prior_ratings],
        group=context_group(event.categorical_context),
    )


def seed_rewards(registry: PolicyRegistry, item: DecisionEvents) -> None:
    """Record the rewards the live policies already learned from ``item``'s history."""
    if item.outcome is None and not item.ratings:
        return
    for key in (item.key, *item.shadows):
        live = registry.get(key)
        if live is not None:
            r = reward_of(live.spec.weights, item.outcome, item.ratings)
            if r is not None:
                item.rewards[key] = r


def apply_event(
    registry: PolicyRegistry, item: DecisionEvents, event: LearningEvent
) -> list[tuple[PolicyKey, float]]:
    """Apply one outcome or feedback ``event`` of decision ``item``; returns ``(policy,
    reward)`` for each policy that learned."""
    if event.kind == "outcome":
        return registry.apply_outcome(item, outcome_of(event), event.event_id)
    if event.rating is not None:
        return registry.apply_feedback(item, float(event.rating), event.event_id)
    return []
