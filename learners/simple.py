"""Baseline policies: epsilon-greedy, uniform random and a fixed arm (A/B control arms)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from banditroute.learners._ridge import RidgeArms
from banditroute.learners._validation import check_choice, check_float, check_int
from banditroute.learners.base import Decision, Policy, epsilon_greedy_probabilities

__all__ = ["EpsilonGreedy", "Fixed", "Uniform"]


class EpsilonGreedy(Policy):
    """Epsilon-greedy with a per-arm linear (ridge) or mean-reward estimator.

    With probability ``1 - epsilon`` the candidate with the highest estimated reward is chosen
    (ties go to the arm added first), otherwise a uniformly random candidate; propensities are
    exact.

    ``estimator="linear"`` (default) scores ``z'theta_a`` with the ridge state shared with
    :class:`~banditroute.learners.linear.LinUCB` (exact ``correct``, pooled prior for new arms).
    ``estimator="mean"`` ignores the context and scores the arm's mean reward; an arm without
    updates scores ``initial_value`` (optimistic by default, so new arms are tried); ``correct``
    adjusts the arm's reward sum exactly.

    Parameters
    ----------
    arms, dim, seed
        See :class:`~banditroute.learners.base.Policy`.
    epsilon
        Exploration probability in ``[0, 1]``.
    estimator
        ``"linear"`` or ``"mean"``.
    ridge
        Ridge regularisation of the linear estimator (> 0).
    initial_value
        Score of an arm with no updates under the mean estimator.
    refresh_every
        Recompute ``A^-1`` exactly every this many updates of an arm (linear estimator).
    **scaling
        ``scaling``, ``scale_clip``, ``scale_freeze_after`` (see :class:`Policy`).

    Examples
    --------
    >>> p = EpsilonGreedy(["a", "b"], dim=1, epsilon=0.2, estimator="mean")
    >>> _ = p.update([0.0], "a", 0.1).update([0.0], "b", 0.9)
    >>> d = p.select([0.0])
    >>> d.probabilities
    {'a': 0.1, 'b': 0.9}
    """

    algorithm = "epsilon_greedy"

    def __init__(
        self,
        arms: Iterable[str],
        dim: int,
        seed: int = 0,
        *,
        epsilon: float = 0.1,
        estimator: str = "linear",
        ridge: float = 1.0,
        initial_value: float = 1.0,
        refresh_every: int = 1000,
        **scaling: Any,
    ) -> None:
        self.epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
        self.estimator = check_choice("estimator", estimator, ("linear", "mean"))
        self.ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        self.initial_value = check_float("initial_value", initial_value)
        self.refresh_every = check_int("refresh_every", refresh_every, low=1)
        super().__init__(arms, dim, seed, **scaling)

    def _init_state(self) -> None:
        p = self._dim + 1 if self.estimator == "linear" else 0
        self._ridge = RidgeArms(p, self.ridge, self.refresh_every)

    def _grow(self) -> None:
        if self.estimator == "linear":
            self._ridge.grow()

    def _learn(self, x: np.ndarray, i: int, reward: float) -> None:
        if self.estimator == "linear":
            self._ridge.learn(i, self._features(x), reward)

    def _relearn(self, x: np.ndarray, i: int, old: float, new: float) -> None:
        if self.estimator == "linear":
            self._ridge.relearn(i, self._features(x), old, new)

    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        if self.estimator == "linear":
            scores = (self._ridge.theta @ self._features(x))[idx]
        else:
            n = self._counts[idx]
            sums = self._reward_sums[idx]
            scores = np.where(n > 0, sums / np.maximum(n, 1), self.initial_value)
        k = len(idx)
        best = int(np.argmax(scores))
        probs = epsilon_greedy_probabilities(k, best, self.epsilon)
        pos = best
        if self.epsilon > 0.0 and k > 1 and rng.random() < self.epsilon:
            pos = int(rng.integers(k))
        return self._decision(idx, scores, probs, pos)

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        if self.estimator == "linear":
            state.update(self._ridge.get_state())
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        if self.estimator == "linear":
            self._ridge.set_state(state, len(self._arm_names))


class _ContextFree(Policy):
    """A policy that ignores contexts and keeps no model (only counts and reward sums)."""

    _uses_features = False

    def _grow(self) -> None:
        pass

    def _learn(self, x: np.ndarray, i: int, reward: float) -> None:
        pass

    def _relearn(self, x: np.ndarray, i: int, old: float, new: float) -> None:
        pass


class Uniform(_ContextFree):
    """Uniformly random choice among the candidates (propensity ``1/k``, exact).

    ``update`` and ``correct`` only maintain the per-arm statistics of :meth:`summary`.
    Scores are all 0; the ranking after the chosen arm follows the order the arms were added.

    Examples
    --------
    >>> d = Uniform(["a", "b", "c", "d"], dim=3, seed=0).select([0, 0, 0], ["a", "c"])
    >>> d.propensity, sorted(d.probabilities)
    (0.5, ['a', 'c'])
    """

    algorithm = "uniform"

    def __init__(self, arms: Iterable[str], dim: int, seed: int = 0, **scaling: Any) -> None:
        super().__init__(arms, dim, seed, **scaling)

    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        k = len(idx)
        pos = int(rng.integers(k)) if k > 1 else 0
        return self._decision(idx, np.zeros(k), np.full(k, 1.0 / k), pos)


class Fixed(_ContextFree):
    """Always the arm ``model`` (an A/B control arm).

    If ``model`` is not among the candidates (or was removed) the choice is uniform over the
    candidates. Probabilities are exact: 1 for ``model`` (0 for the others), else ``1/k``.
    ``model`` scores 1 and the others 0.

    Parameters
    ----------
    arms, dim, seed
        See :class:`~banditroute.learners.base.Policy`.
    model
        The arm to choose; must be one of ``arms``.

    Examples
    --------
    >>> p = Fixed(["a", "b"], dim=1, model="b")
    >>> d = p.select([0.0])
    >>> d.arm, d.propensity, d.ranking
    ('b', 1.0, ['b', 'a'])
    >>> p.select([0.0], ["a"]).arm
    'a'
    """

    algorithm = "fixed"

    def __init__(
        self, arms: Iterable[str], dim: int, seed: int = 0, *, model: str = "", **scaling: Any
    ) -> None:
        if not isinstance(model, str):
            raise TypeError(f"model must be a str, got {type(model).__name__}")
        self.model = model
        super().__init__(arms, dim, seed, **scaling)
        if model not in self._index:
            raise ValueError(
                f"model must be one of the arms ({', '.join(self._arm_names)}), got {model!r}"
            )

    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        k = len(idx)
        target = self._index[self.model]
        hits = np.flatnonzero(idx == target)
        if len(hits):
            pos = int(hits[0])
            probs = np.zeros(k)
            probs[pos] = 1.0
            return self._decision(idx, probs.copy(), probs, pos)
        pos = int(rng.integers(k)) if k > 1 else 0
        return self._decision(idx, np.zeros(k), np.full(k, 1.0 / k), pos)
