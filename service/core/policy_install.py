"""Installing a configuration's policy versions in this process's registry.

A policy version named by the config and not live yet is installed from its snapshot when one
was restored, else built fresh with its initial arms (``ConfigSnapshot.initial_arms``) and
positioned at the follower's current event. A spec the learners refuse is logged and skipped: it
cannot serve, and the rest of the config still applies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from banditroute.learners.base import Policy
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.config_cache import ConfigSnapshot
from banditroute.service.core.policies import PolicyRegistry

__all__ = ["install_policies", "lowest_position"]

log = logging.getLogger(__name__)


def install_policies(
    registry: PolicyRegistry,
    config: ConfigSnapshot,
    position: int,
    restored: Mapping[PolicyKey, tuple[int, Policy]] | None = None,
) -> None:
    """Make every policy version of ``config`` live in ``registry``.

    ``restored`` maps a policy version to ``(last_event_id, policy)`` from its snapshot.
    """
    for key, spec in config.policies.items():
        if key in registry:
            continue
        try:
            if restored and key in restored:
                last, policy = restored[key]
                registry.install(spec, policy, last)
            else:
                registry.ensure(spec, config.initial_arms(spec), last_event_id=position)
        except (TypeError, ValueError) as exc:  # a spec the learners refuse: skip it
            log.error("policy %s@%s cannot be built: %s", key.name, key.version, exc)


def lowest_position(registry: PolicyRegistry) -> int:
    """The log position every live policy has reached (0 when none is live)."""
    lasts = [
        live.last_event_id
        for key in registry.policy_keys()
        if (live := registry.get(key)) is not None
    ]
    return min(lasts, default=0)
