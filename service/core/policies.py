"""Live policies of one process, keyed by (policy name, version), and how events change them.

Every process learns only by applying the event log in ``event_id`` order (see
:mod:`banditroute.service.core.follower`), so the state of a policy version is a function of the log
alone and every process and replica converges to the same bytes
(``banditroute.learners.state.dumps``).

The reward of a decision is a function of the events of that decision seen so far in log order
(the merge rule of :mod:`banditroute.learners.reward`, with the feedback taken as the mean of all
ratings received so far). The first event that gives a decision a reward (its outcome, or a rating
when no outcome came yet) calls ``policy.update(x, model, reward)``; every later event that
changes the reward calls ``policy.correct(x, model, old_reward, new_reward)``.

Arms: a policy version is built with the models that existed when it was created
(:meth:`~banditroute.service.core.config_cache.ConfigSnapshot.initial_arms`). A model added later
becomes an arm at the first outcome or rating of a decision that chose it, a position in the log, so
every process and a rebuild add it at the same point (``add_arm`` gives the new arm a prior pooled
from the arms learnt so far, so *when* it is added matters). Until then Route treats it as a
cold candidate (see :mod:`banditroute.service.core.router`). Disabled models stay arms; routes
simply do not offer them.

Examples
--------
>>> import numpy as np
>>> from banditroute.learners.reward import RewardWeights
>>> spec = PolicySpec("epsilon_greedy", name="p", version=1, weights=RewardWeights(), seed=0)
>>> reg = PolicyRegistry(dim=4)
>>> live = reg.ensure(spec, ["a", "b"])
>>> ev = DecisionEvents(key=spec.key, model="a", features=np.zeros(4), shadows=())
>>> reg.apply_outcome(ev, OutcomeFacts(quality=1.0), event_id=1)
[(PolicyKey(name='p', version=1), 1.0)]
>>> reg.apply_feedback(ev, 0.0, event_id=2)  # the rating halves the merged quality
[(PolicyKey(name='p', version=1), 0.5)]
>>> reg.advance(2)
>>> live.policy.summary()["a"], live.last_event_id
({'updates': 1, 'mean_reward': 0.5, 'active': True}, 2)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from banditroute.learners.base import Policy
from banditroute.learners.registry import make_policy
from banditroute.learners.reward import RewardWeights, compute_reward
from banditroute.service.core.assignment import PolicyKey

__all__ = [
    "DecisionEvents",
    "LivePolicy",
    "OutcomeFacts",
    "PolicyRegistry",
    "PolicySpec",
    "reward_of",
]


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A policy: an algorithm with its hyperparameters and, for a version configured through
    Admin, its name, version, reward weights and seed (replay names a spec by its algorithm).

    Examples
    --------
    >>> spec = PolicySpec.parse("linucb:alpha=0.5,explore=0.01")
    >>> spec.algorithm, spec.hyperparameters, spec.label
    ('linucb', {'alpha': 0.5, 'explore': 0.01}, 'linucb')
    >>> PolicySpec.parse("epsilon_greedy").hyperparameters
    {}
    >>> type(spec.build(["a", "b"], dim=4, seed=0)).__name__
    'LinUCB'
    """

    algorithm: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    #: The policy's name ("" takes the algorithm's).
    name: str = ""
    version: int = 0
    weights: RewardWeights = field(default_factory=RewardWeights)
    seed: int = 0
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.algorithm)

    @property
    def key(self) -> PolicyKey:
        """``(name, version)``."""
        return PolicyKey(self.name, self.version)

    @property
    def label(self) -> str:
        """Display label of replay reports (the name)."""
        return self.name

    @classmethod
    def parse(cls, text: str) -> PolicySpec:
        """Parse ``algorithm[:key=value,key=value...]`` (values: int, float, bool, str)."""
        name, _, rest = text.partition(":")
        name = name.strip()
        if not name:
            raise ValueError(f"policy: empty algorithm name in {text!r}")
        params: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in rest.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"policy: expected key=value, got {item!r} in {text!r}")
            params[key.strip()] = _parse_value(raw.strip())
        return cls(name, params)

    def build(self, arms: Sequence[str], dim: int, seed: int | None = None) -> Policy:
        """A fresh, untrained policy over ``arms`` (``seed`` defaults to the spec's)."""
        return make_policy(
            self.algorithm,
            list(arms),
            dim,
            seed=self.seed if seed is None else seed,
            **self.hyperparameters,
        )


def _parse_value(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.lower() == "null":
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


@dataclass(slots=True)
class OutcomeFacts:
    """What an outcome says about the chosen model's answer (fields of ``outcomes``)."""

    quality: float | None = None
    success: bool | None = None
    error: bool = False
    cost_usd: float = 0.0
    latency_ms: float | None = None


@dataclass(slots=True)
class DecisionEvents:
    """A decision as the learner needs it, plus the outcome and ratings applied so far."""

    key: PolicyKey
    model: str
    features: np.ndarray
    shadows: tuple[PolicyKey, ...]
    outcome: OutcomeFacts | None = None
    #: The request's group (its categorical context, see ``context_group``), or None.
    group: str | None = None
    ratings: list[float] = field(default_factory=list)
    #: Reward each policy (served and shadows) last learned for this decision.
    rewards: dict[PolicyKey, float] = field(default_factory=dict)


def reward_of(
    weights: RewardWeights, outcome: OutcomeFacts | None, ratings: Sequence[float]
) -> float | None:
    """Reward of a decision from its outcome and ratings (None when nothing is known yet).

    >>> reward_of(RewardWeights(), OutcomeFacts(quality=0.6), [1.0])
    0.8
    >>> reward_of(RewardWeights(), None, []) is None
    True
    """
    feedback = float(sum(ratings) / len(ratings)) if ratings else None
    if outcome is None:
        if feedback is None:
            return None
        return compute_reward(weights, feedback=feedback)
    return compute_reward(
        weights,
        quality=outcome.quality,
        success=outcome.success,
        error=outcome.error,
        cost_usd=outcome.cost_usd,
        latency_ms=outcome.latency_ms,
        feedback=feedback,
    )


@dataclass(slots=True)
class LivePolicy:
    """A policy version's learned state and its position in the event log."""

    spec: PolicySpec
    policy: Policy
    #: Every event up to this id has been applied (events of other policies included).
    last_event_id: int = 0
    #: Events that changed this policy since its last snapshot.
    since_snapshot: int = 0
    #: Events of the log (any policy) applied since this policy's last snapshot.
    seen_since_snapshot: int = 0
    updates: int = 0


class PolicyRegistry:
    """The live policies of this process.

    Parameters
    ----------
    dim
        Feature dimension every policy is built with.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._live: dict[PolicyKey, LivePolicy] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._live

    def __len__(self) -> int:
        return len(self._live)

    def get(self, key: PolicyKey) -> LivePolicy | None:
        """The live policy of ``key``, or None."""
        return self._live.get(key)

    def policy_keys(self) -> list[PolicyKey]:
        """Keys of every live policy."""
        return list(self._live)

    def build(self, spec: PolicySpec, arms: Sequence[str]) -> Policy:
        """A fresh, untrained policy for ``spec`` over ``arms``."""
        return spec.build(arms, self.dim)

    def ensure(self, spec: PolicySpec, arms: Sequence[str], last_event_id: int = 0) -> LivePolicy:
        """Return the live policy of ``spec``; a new one is fresh (with ``arms``), positioned
        at ``last_event_id``."""
        live = self._live.get(spec.key)
        if live is None:
            live = LivePolicy(spec, self.build(spec, arms), last_event_id=last_event_id)
            self._live[spec.key] = live
        return live

    def install(self, spec: PolicySpec, policy: Policy, last_event_id: int) -> LivePolicy:
        """Install a restored policy (from a snapshot) positioned at ``last_event_id``."""
        live = LivePolicy(spec, policy, last_event_id=last_event_id)
        self._live[spec.key] = live
        return live

    def advance(self, event_id: int, events: int = 0) -> None:
        """Mark every policy as having seen the log up to ``event_id`` (``events`` more)."""
        for live in self._live.values():
            if live.last_event_id < event_id:
                live.last_event_id = event_id
            live.seen_since_snapshot += events

    def _learn(self, live: LivePolicy, ev: DecisionEvents, event_id: int) -> float | None:
        key = live.spec.key
        new = reward_of(live.spec.weights, ev.outcome, ev.ratings)
        if new is None or not math.isfinite(new):
            return None
        old = ev.rewards.get(key)
        ev.rewards[key] = new
        if event_id <= live.last_event_id:
            return None  # already part of this policy's state (snapshot or history replay)
        policy = live.policy
        if ev.model not in policy.arms:
            policy.add_arm(ev.model)
        if old is None:
            policy.update(ev.features, ev.model, new, group=ev.group)
            live.updates += 1
        elif old != new:
            policy.correct(ev.features, ev.model, old, new, group=ev.group)
        else:
            return None
        live.since_snapshot += 1
        return new

    def _apply(self, ev: DecisionEvents, event_id: int) -> list[tuple[PolicyKey, float]]:
        changed: list[tuple[PolicyKey, float]] = []
        for key in (ev.key, *ev.shadows):
            live = self._live.get(key)
            if live is None:
                continue
            reward = self._learn(live, ev, event_id)
            if reward is not None:
                changed.append((key, reward))
        return changed

    def apply_outcome(
        self, ev: DecisionEvents, outcome: OutcomeFacts, event_id: int
    ) -> list[tuple[PolicyKey, float]]:
        """Apply an outcome event; returns ``(policy, reward)`` for each policy that learned."""
        ev.outcome = outcome
        return self._apply(ev, event_id)

    def apply_feedback(
        self, ev: DecisionEvents, rating: float, event_id: int
    ) -> list[tuple[PolicyKey, float]]:
        """Apply a feedback event; returns ``(policy, reward)`` for each policy that learned."""
        ev.ratings.append(rating)
        return self._apply(ev, event_id)


class DecisionCache:
    """Bounded LRU of :class:`DecisionEvents` by decision id (follower working set)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, DecisionEvents] = OrderedDict()

    def get(self, decision_id: Any) -> DecisionEvents | None:
        """The cached decision, refreshed as most recently used."""
        item = self._items.get(decision_id)
        if item is not None:
            self._items.move_to_end(decision_id)
        return item

    def contains(self, decision_id: Any) -> bool:
        """Whether ``decision_id`` is cached (without refreshing it)."""
        return decision_id in self._items

    def put(self, decision_id: Any, item: DecisionEvents) -> None:
        """Cache ``item``, evicting the least recently used beyond capacity."""
        self._items[decision_id] = item
        self._items.move_to_end(decision_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()
