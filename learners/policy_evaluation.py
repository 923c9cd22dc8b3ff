"""A policy judged on logged decisions: its IPS, SNIPS, doubly robust and replay estimates.

:func:`evaluate_policy` runs a :class:`~banditroute.learners.base.Policy` over
:class:`LoggedEvent` records in order (progressive validation: it selects, then learns from the
logged outcome) and scores it with every estimator of :mod:`banditroute.learners.evaluation`.
Doubly robust needs a reward model: :class:`RidgeRewardModel`, online ridge per arm.

Examples
--------
>>> import numpy as np
>>> from banditroute.learners import Fixed
>>> events = [LoggedEvent(np.array([1.0]), arm, reward, 0.5)
...           for arm, reward in [("a", 1.0), ("b", 0.0)] * 50]
>>> estimates = evaluate_policy(Fixed(["a", "b"], dim=1, model="a"), events)
>>> round(estimates["ips"].value, 3), round(estimates["snips"].value, 3)
(1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from banditroute.learners._ridge import RidgeArms
from banditroute.learners.evaluation import (
    Estimate,
    doubly_robust,
    ips,
    replay_estimate,
    snips,
)

if TYPE_CHECKING:
    from banditroute.learners.base import Policy

__all__ = ["LoggedEvent", "RidgeRewardModel", "evaluate_policy"]


@dataclass(frozen=True)
class LoggedEvent:
    """One logged decision: context, chosen arm, its reward and logging propensity."""

    context: np.ndarray
    arm: str
    reward: float
    propensity: float
    candidates: tuple[str, ...] | None = None
    #: The request's group (see ``group`` in :meth:`Policy.select`), or None.
    group: str | None = None


class RidgeRewardModel:
    """Per-arm online ridge regression, the default reward model of doubly robust: the ridge
    state of LinUCB and linear Thompson sampling (``RidgeArms``) on the raw context.

    An arm first seen in :meth:`update` starts from the pooled prior of the arms learnt so far
    (as a policy's new arm does).

    Examples
    --------
    >>> m = RidgeRewardModel(["a"], dim=1, alpha=1.0)
    >>> m.predict(np.array([1.0]))["a"]
    0.0
    >>> m = m.update(np.array([1.0]), "a", 1.0)
    >>> round(m.predict(np.array([1.0]))["a"], 3)
    0.5
    """

    def __init__(self, arms: Sequence[str], dim: int, alpha: float = 1.0) -> None:
        if dim < 1:
            raise ValueError("dim: must be >= 1")
        if alpha <= 0:
            raise ValueError("alpha: must be > 0")
        self.alpha = alpha
        self.dim = dim
        self._ridge = RidgeArms(dim, alpha)
        self._index: dict[str, int] = {}
        for arm in arms:
            self._add(arm)

    def _add(self, arm: str) -> int:
        self._ridge.grow()
        self._index[arm] = self._ridge.k - 1
        return self._index[arm]

    def predict(self, x: np.ndarray) -> dict[str, float]:
        """Predicted reward of every known arm for context ``x``."""
        means = self._ridge.theta.dot(np.asarray(x, dtype=np.float64))
        return {arm: float(means[i]) for arm, i in self._index.items()}

    def update(self, x: np.ndarray, arm: str, reward: float) -> RidgeRewardModel:
        """Add one observation; returns self."""
        i = self._index.get(arm)
        if i is None:
            i = self._add(arm)
        self._ridge.learn(i, np.asarray(x, dtype=np.float64), float(reward))
        return self


def evaluate_policy(policy: Policy, events: Sequence[LoggedEvent], *, learn: bool = True,
                    seed: int = 0, confidence: float = 0.95, bootstrap: int = 0,
                    reward_model: RidgeRewardModel | None = None) -> dict[str, Estimate]:
    """Estimate a policy's value on logged events with IPS, SNIPS, DR and replay.

    The events are processed in order. For each, the target's distribution over the
    event's candidates comes from ``policy.select(x, candidates, rng=...)``; then, with
    ``learn=True``, the policy is updated with the logged (x, arm, reward), so the
    estimate is that of the policy learning from this stream (progressive validation).
    For the replay method, the target's *sampled* arm is compared with the logged arm.
    The doubly-robust reward model predicts before it is updated with each event.
    """
    if not events:
        raise ValueError("events: need at least one logged event")
    rng = np.random.default_rng(seed)
    arms = list(policy.arms)
    for ev in events:
        for arm in (ev.arm, *(ev.candidates or ())):
            if arm not in arms:
                arms.append(arm)
    index = {arm: j for j, arm in enumerate(arms)}
    dim = int(np.asarray(events[0].context).size)
    model = reward_model or RidgeRewardModel(arms, dim)
    n, k = len(events), len(arms)
    pi = np.zeros((n, k))
    qhat = np.zeros((n, k))
    logged = np.zeros(n, dtype=np.int64)
    sampled: list[str] = []
    for t, ev in enumerate(events):
        x = np.asarray(ev.context, dtype=np.float64)
        cands = list(ev.candidates) if ev.candidates else None
        known = [a for a in (cands or policy.arms) if a in policy.arms]
        if known:
            decision = policy.select(x, known, rng=rng, group=ev.group)
            for arm, prob in decision.probabilities.items():
                pi[t, index[arm]] = prob
            sampled.append(decision.arm)
        else:
            sampled.append("")
        preds = model.predict(x)
        for arm, value in preds.items():
            qhat[t, index[arm]] = value
        logged[t] = index[ev.arm]
        model.update(x, ev.arm, ev.reward)
        if learn and ev.arm in policy.arms:
            policy.update(x, ev.arm, ev.reward, group=ev.group)
    rewards = np.array([ev.reward for ev in events], dtype=np.float64)
    props = np.array([ev.propensity for ev in events], dtype=np.float64)
    target = pi[np.arange(n), logged]
    kwargs: dict[str, Any] = {"confidence": confidence, "bootstrap": bootstrap, "seed": seed}
    return {
        "ips": ips(rewards, props, target, **kwargs),
        "snips": snips(rewards, props, target, **kwargs),
        "dr": doubly_robust(rewards, props, logged, pi, qhat, **kwargs),
        "replay": replay_estimate(rewards, [ev.arm for ev in events], sampled, props,
                                  weighted=True, **kwargs),
    }
