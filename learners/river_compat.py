"""Drive banditroute policies with River's bandit tooling.

:class:`AsRiverPolicy` wraps a :class:`~banditroute.learners.base.Policy` in River's contextual
bandit protocol (``river.bandit.base.ContextualPolicy``: ``pull(arm_ids, context)`` and
``update(arm_id, context, reward)``), so code written for River, such as
``river.bandit.evaluate_offline``, can run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from river.bandit.base import ArmID, ContextualPolicy

from banditroute.learners.base import Policy

__all__ = ["AsRiverPolicy"]


class AsRiverPolicy(ContextualPolicy):
    """A banditroute policy behind River's contextual bandit API.

    Contexts are River feature dicts; ``feature_names`` fixes their order in the policy's
    vectors (a missing feature counts as 0). Arm ids may be ints or strs; the policy's arms are
    their ``str`` forms. ``update`` feeds the wrapped policy; River's ``clone()`` deep-copies it.

    Parameters
    ----------
    policy
        The policy to drive (its ``dim`` must equal ``len(feature_names)``).
    feature_names
        Context keys, in vector order.

    Examples
    --------
    >>> from river import bandit
    >>> from banditroute.learners import LinUCB
    >>> history = [(["a", "b"], {"x": float(i % 2)}, "ab"[i % 2], 1.0) for i in range(40)]
    >>> rp = AsRiverPolicy(LinUCB(["a", "b"], dim=1, seed=0), ["x"])
    >>> total, n_used = bandit.evaluate_offline(rp, history)
    >>> learnt = sum(arm["updates"] for arm in rp.policy.summary().values())
    >>> n_used > 0, learnt == n_used
    (True, True)
    """

    def __init__(self, policy: Policy, feature_names: Sequence[str]) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a learners Policy, got {type(policy).__name__}")
        names = list(feature_names)
        if len(names) != policy.dim:
            raise ValueError(
                f"feature_names has {len(names)} names but the policy has dim={policy.dim}"
            )
        super().__init__(reward_obj=None, burn_in=0)
        self.policy = policy
        self.feature_names = names

    def _vector(self, context: dict[str, Any] | None) -> np.ndarray:
        if context is None:
            return np.zeros(len(self.feature_names))
        return np.array([float(context.get(n, 0.0)) for n in self.feature_names])

    def _pull(self, arm_ids: Iterable[ArmID], context: dict) -> ArmID:  # type: ignore[override]
        by_name = {str(a): a for a in arm_ids}
        decision = self.policy.select(self._vector(context), list(by_name))
        return by_name[decision.arm]

    def update(self, arm_id: ArmID, context: Any, *reward_args: Any, **reward_kwargs: Any) -> None:
        """Update River's reward statistics and the wrapped policy."""
        super().update(arm_id, context, *reward_args, **reward_kwargs)
        reward = reward_args[0] if reward_args else reward_kwargs["reward"]
        self.policy.update(self._vector(context), str(arm_id), float(reward))
