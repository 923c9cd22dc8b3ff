"""Disjoint LinUCB and linear Thompson sampling on one shared per-arm ridge state.

Both keep, per arm, ``A = diag(prior) + sum z z'``, its inverse (Sherman-Morrison) and
``b = sum r z`` on the scaled features ``z`` (see :mod:`banditroute.learners.base`), and differ
only in how they score: LinUCB adds an upper-confidence bonus, Thompson sampling samples
scores.

Structure for fast cold start and transfer
------------------------------------------
* Feature-group ridge: the prior is weak on each arm's intercept (``ridge``, default 1) and
  strong on its context coefficients (``context_ridge``, default ``4 * dim`` for LinUCB and
  ``dim`` for Thompson sampling), and the scaled
  context is shrunk to a norm of at most ``sqrt(dim)``. What an arm earns *everywhere* is
  learnt from a few events and carries over at once to prompts unlike any seen; the context
  refines it as evidence accumulates, and the width of a never-seen kind of prompt stays
  bounded instead of sending it to exploration (hybrid LinUCB's structure, Li et al. 2010,
  with the shared part folded into the prior).
* Empirical-Bayes intercept: each intercept's prior is centred on the mean reward of all arms
  so far (recomputed at every decision from the update counts and reward sums, so rebuilds
  stay exact). An arm not yet tried scores the pool's average plus its full prior width, so
  every arm is tried early and none is locked out by an early lucky one.
* Group effects: a request may name its group (``group`` in ``select``/``update``: the
  service passes the request's categorical context). Each arm learns one effect per group
  with prior precision ``group_ridge``, solved exactly with the ridge state above
  (:mod:`banditroute.learners._groups`); a group never seen is scored by the features alone.
  The prior is estimated from the data as groups accumulate (``fit_group_ridge``), strong
  where groups differ little beyond noise and weak where each has its own winner, and moves
  away from ``group_ridge`` only as far as the number of (group, model) cells supports.

References
----------
.. [1] Li, Chu, Langford, Schapire (2010). A Contextual-Bandit Approach to Personalized News
   Article Recommendation. https://arxiv.org/abs/1003.0146
.. [2] Agrawal, Goyal (2013). Thompson Sampling for Contextual Bandits with Linear Payoffs.
   https://arxiv.org/abs/1209.3352
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from banditroute.learners._groups import GroupEffects
from banditroute.learners._ridge import RidgeArms
from banditroute.learners._validation import check_bool, check_float, check_int
from banditroute.learners.base import Decision, Policy, epsilon_greedy_probabilities, sample_index

__all__ = ["LinUCB", "LinearThompson"]

#: Where ``fit_group_ridge`` keeps its estimate: precision 1 (effects as large as the noise)
#: to 256 (effects 1/16 of the noise's standard deviation).
_FIT_GROUP_RIDGE_RANGE = (1.0, 256.0)


def _check_context_ridge(value: float | None) -> float | None:
    return None if value is None else check_float("context_ridge", value, low=0.0, low_open=True)


class _RidgePolicy(Policy):
    """A policy whose model is one :class:`~banditroute.learners._ridge.RidgeArms`."""

    ridge: float
    context_ridge: float | None
    group_ridge: float
    fit_group_ridge: bool
    fit_group_ridge_halfway: float
    max_groups: int
    refresh_every: int
    _uses_groups = True
    #: ``context_ridge`` when none is given, per feature dimension (benchmarks/defaults.py).
    _context_ridge_per_dim: float = 1.0

    def _init_state(self) -> None:
        context = (
            self._context_ridge_per_dim * self._dim
            if self.context_ridge is None
            else self.context_ridge
        )
        prior = np.full(self._dim + 1, context)
        prior[self._dim] = self.ridge  # the intercept comes last (see Policy._features)
        self._ridge = RidgeArms(self._dim + 1, prior, self.refresh_every)
        self._groups = GroupEffects(self._dim + 1, self.group_ridge, self.max_groups)
        self._context_cap2 = float(self._dim)

    def _check_groups(self, group_ridge: float, fit_group_ridge: bool, halfway: float,
                      max_groups: int) -> None:
        self.group_ridge = check_float("group_ridge", group_ridge, low=0.0, low_open=True)
        self.fit_group_ridge = check_bool("fit_group_ridge", fit_group_ridge)
        self.fit_group_ridge_halfway = check_float("fit_group_ridge_halfway", halfway, low=0.0)
        self.max_groups = check_int("max_groups", max_groups, low=0)

    def _features(self, x: np.ndarray) -> np.ndarray:
        """Scaled features and intercept; the context part shrunk to norm <= sqrt(dim)."""
        z = super()._features(x)
        head = z[: self._dim]
        norm2 = float(head.dot(head))
        if norm2 > self._context_cap2:
            head *= math.sqrt(self._context_cap2 / norm2)
        return z

    @property
    def groups(self) -> int:
        return len(self._groups.rows)

    @property
    def group_prior(self) -> float:
        """The group effects' prior precision now: ``group_ridge``, or its estimate when
        ``fit_group_ridge`` is on."""
        return self._groups.prior

    def _grow(self) -> None:
        self._ridge.grow(pooled_intercept=False)
        self._groups.grow()

    def _means_and_widths(
        self, x: np.ndarray, group: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every arm's posterior mean reward and variance for ``x`` (in ``group``)."""
        z = self._features(x)
        if group is None:
            return self._ridge.means_and_widths(z, self._intercept_prior())
        return self._groups.means_and_widths(self._ridge, z, group, self._intercept_prior())

    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        return self._choose(*self._means_and_widths(x), idx, rng)

    def _select_in_group(
        self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator, group: str
    ) -> Decision:
        return self._choose(*self._means_and_widths(x, group), idx, rng)

    def _choose(self, means: np.ndarray, widths: np.ndarray, idx: np.ndarray,
                rng: np.random.Generator) -> Decision:
        """Choose among ``idx`` from every arm's posterior mean and variance."""
        raise NotImplementedError

    def _check_explore(self, explore: float, decay: float | None, minimum: float) -> None:
        self.explore = check_float("explore", explore, low=0.0, high=1.0)
        self.explore_decay = (None if decay is None
                              else check_float("explore_decay", decay, low=0.0, low_open=True))
        self.explore_min = check_float("explore_min", minimum, low=0.0, high=1.0)

    def _explore_now(self) -> float:
        """The next decision's uniform-exploration probability: ``explore``, decaying like
        ``sqrt(explore_decay / (explore_decay + n))`` after ``n`` updates but never below
        ``explore_min`` (constant when ``explore_min >= explore``). Two significant digits:
        equal states give equal propensities, and the epsilon-greedy vectors stay cached."""
        if self.explore_decay is None or self.explore_min >= self.explore:
            return self.explore
        n = int(self._counts.sum())
        cached = self.__dict__.get("_explore_cache")  # (n, value); not part of the state
        if cached is not None and cached[0] == n:
            return cached[1]
        decayed = self.explore * math.sqrt(self.explore_decay / (self.explore_decay + n))
        value = max(self.explore_min, float(f"{decayed:.2g}"))
        self.__dict__["_explore_cache"] = (n, value)
        return value

    def _intercept_prior(self) -> float:
        """Mean reward over every arm so far: the prior mean of each arm's intercept."""
        n = int(self._counts.sum())
        return float(self._reward_sums.sum()) / n if n else 0.0

    def _learn(self, x: np.ndarray, i: int, reward: float) -> None:
        self._ridge.learn(i, self._features(x), reward)

    def _relearn(self, x: np.ndarray, i: int, old: float, new: float) -> None:
        self._ridge.relearn(i, self._features(x), old, new)

    def _learn_in_group(self, x: np.ndarray, i: int, reward: float, group: str) -> None:
        self._groups.learn(self._ridge, i, self._features(x), reward, group)
        if self.fit_group_ridge:
            t = self._groups.events  # grouped events so far: the log fixes the schedule
            if t >= 64 and ((t & (t - 1)) == 0 or t % 256 == 0):  # 64, 128, 256, 512, ...
                prior = self._groups.estimate_prior(self._ridge, *_FIT_GROUP_RIDGE_RANGE,
                                                    self.group_ridge, self.fit_group_ridge_halfway)
                if prior is not None:
                    self._groups.set_prior(self._ridge, prior)

    def _relearn_in_group(
        self, x: np.ndarray, i: int, old: float, new: float, group: str
    ) -> None:
        self._groups.relearn(self._ridge, i, self._features(x), old, new, group)

    def _get_state(self) -> dict[str, Any]:
        state = {**super()._get_state(), **self._ridge.get_state()}
        if self._groups.rows:  # a policy that never saw a group keeps its old snapshot
            state.update(self._groups.get_state())
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._ridge.set_state(state, len(self._arm_names))
        self._groups.set_state(state, len(self._arm_names))


class LinUCB(_RidgePolicy):
    """Disjoint LinUCB with an explicit exploration floor.

    Score of arm ``a``: ``z'theta_a + alpha * sqrt(z' A_a^-1 z)``. With probability
    ``1 - e`` the best-scoring candidate is chosen (ties go to the arm added first), with
    probability ``e`` a uniformly random candidate, so every candidate has propensity
    ``>= e / k`` and the propensity is exact. ``e`` starts at ``explore`` and decays like
    ``sqrt(explore_decay / (explore_decay + n))`` after ``n`` updates, down to
    ``explore_min``: exploring uniformly is what a cold pool needs in its first hundreds of
    decisions, and a tax on every later one (a 1 % floor sends 1 % of calls to the dearest and
    the worst models for ever).

    ``correct`` is exact: ``b += (new - old) * z`` with ``A`` unchanged (``z`` is the context
    scaled with the current scaler, identical to the original one once the scaler is frozen or
    with ``scaling="none"``). A new arm gets the pooled prior of :class:`RidgeArms` (mean of the
    learnt arms' ``theta``, full prior width), so its bonus makes LinUCB try it.

    Parameters
    ----------
    arms, dim, seed
        See :class:`~banditroute.learners.base.Policy`.
    alpha
        Width of the confidence bonus (>= 0), in reward units per posterior standard deviation
        (the default 0.35 suits rewards in [-1, 1] with 0/1 quality).
    ridge
        Prior precision of each arm's intercept (> 0).
    context_ridge
        Prior precision of each context coefficient (> 0; default ``4 * dim``: see the module
        doc; the defaults are chosen on validation data by ``benchmarks/defaults.py``).
    explore
        Initial probability of a uniform choice among the candidates, in ``[0, 1]``.
    explore_decay
        Updates over which ``explore`` halves its square (> 0; default 100), or ``None`` for a
        constant ``explore``.
    explore_min
        Where the decay stops, in ``[0, 1]`` (``>= explore``: no decay); use ``> 0`` for
        off-policy evaluation (the default 0.002 keeps every propensity >= 0.002 / k, reached
        after 2,400 updates).
    group_ridge
        Prior precision of each arm's effect per request group (> 0; see ``group`` in
        :meth:`~banditroute.learners.base.Policy.select` and :mod:`~banditroute.learners._groups`).
    fit_group_ridge
        Estimate ``group_ridge`` from the data (empirical Bayes, within ``[1, 256]``): after
        64, 128 and 256 grouped events, then every 256, starting from ``group_ridge``
        (``False`` keeps it fixed).
    fit_group_ridge_halfway
        How far the estimate may move from ``group_ridge``: halfway on a log scale once this
        many (group, model) cells have two events or more (>= 0; 0 trusts the raw estimate).
    max_groups
        Groups that get their own effects (>= 0); later new groups are treated as none.
    refresh_every
        Recompute ``A^-1`` exactly every this many updates of an arm.
    min_pulls
        Until a candidate has this many updates, the greedy choice is the best-scoring such
        candidate (>= 0; 0: off). One early zero cannot then lock a good model out for the
        rest of the pass (with 0/1 quality, a model right 77 % of the time opens with a zero
        23 % of the time); the epsilon-greedy propensities stay exact. Counts move with
        updates, so on a live route every request goes to such a model until its outcomes
        arrive: keep ``min_pulls`` small where outcomes come late.
    **scaling
        ``scaling``, ``scale_clip``, ``scale_freeze_after`` (see :class:`Policy`).

    Examples
    --------
    >>> p = LinUCB(["small", "large"], dim=2, seed=1, explore=0.1)
    >>> for _ in range(20):
    ...     _ = p.update([1.0, 0.0], "large", 1.0).update([1.0, 0.0], "small", 0.0)
    >>> d = p.select([1.0, 0.0], rng=np.random.default_rng(0))
    >>> d.arm, round(d.propensity, 4), d.ranking   # explore 0.1 decayed to 0.085 after 40
    ('large', 0.9575, ['large', 'small'])
    >>> round(sum(d.probabilities.values()), 12)
    1.0
    """

    algorithm = "linucb"
    _context_ridge_per_dim = 4.0

    def __init__(
        self,
        arms: Iterable[str],
        dim: int,
        seed: int = 0,
        *,
        alpha: float = 0.35,
        ridge: float = 1.0,
        context_ridge: float | None = None,
        explore: float = 0.01,
        explore_decay: float | None = 100.0,
        explore_min: float = 0.002,
        group_ridge: float = 16.0,
        fit_group_ridge: bool = True,
        fit_group_ridge_halfway: float = 128.0,
        max_groups: int = 1024,
        refresh_every: int = 1000,
        min_pulls: int = 0,
        **scaling: Any,
    ) -> None:
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.min_pulls = check_int("min_pulls", min_pulls, low=0)
        self.ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        self.context_ridge = _check_context_ridge(context_ridge)
        self._check_explore(explore, explore_decay, explore_min)
        self._check_groups(group_ridge, fit_group_ridge, fit_group_ridge_halfway, max_groups)
        self.refresh_every = check_int("refresh_every", refresh_every, low=1)
        super().__init__(arms, dim, seed, **scaling)

    def _choose(self, means: np.ndarray, widths: np.ndarray, idx: np.ndarray,
                rng: np.random.Generator) -> Decision:
        np.sqrt(widths, out=widths)
        widths *= self.alpha
        widths += means
        scores = widths if len(idx) == len(means) else widths[idx]
        best = None
        if self.min_pulls:
            short = self._counts[idx] < self.min_pulls
            if short.any():  # the best-scoring candidate that has not had its pulls yet
                best = int(np.where(short, scores, -np.inf).argmax())
        return self._greedy_decision(idx, scores, rng, best)

    def _greedy_decision(self, idx: np.ndarray, scores: np.ndarray,
                         rng: np.random.Generator, best: int | None = None) -> Decision:
        """The best of ``scores`` (aligned with ``idx``; or the candidate at ``best``), or
        with the current exploration probability a uniformly random candidate; exact
        epsilon-greedy propensities."""
        k = len(idx)
        if best is None:
            best = int(scores.argmax())
        explore = self._explore_now()
        probs = _greedy_probabilities(k, best, explore)
        pos = best
        if explore > 0.0 and k > 1 and rng.random() < explore:
            pos = int(rng.integers(k))
        return self._decision(idx, scores, probs, pos)


class LinearThompson(_RidgePolicy):
    """Linear Thompson sampling with a Monte Carlo propensity.

    For context ``z`` arm ``a``'s sampled score ``z'theta~`` is a scalar Gaussian with mean
    ``z'theta_a`` and variance ``v^2 z'A_a^-1 z``, so scores are sampled directly (``O(K)`` per
    draw instead of sampling ``theta``). ``propensity_draws`` independent score draws give the
    frequency ``f_a`` with which each candidate wins; the selection probabilities are
    ``(1 - explore) * f + explore / k`` and the arm is drawn from exactly these probabilities, so
    the reported propensity is the true probability this arm was chosen with (given the draws)
    and never below ``explore / k``.

    ``scores`` are the posterior mean rewards ``z'theta_a``. ``correct`` is exact as for
    :class:`LinUCB`; new arms get the same pooled prior.

    Parameters
    ----------
    arms, dim, seed
        See :class:`~banditroute.learners.base.Policy`.
    v
        Posterior scale (> 0); larger explores more.
    ridge
        Prior precision of each arm's intercept (> 0).
    context_ridge
        Prior precision of each context coefficient (> 0; default ``dim``).
    propensity_draws
        Number of score draws per decision (>= 1).
    explore
        Uniform mixing probability in ``[0, 1]`` (the propensity floor is ``explore / k``).
    explore_decay, explore_min
        As for :class:`LinUCB`; off by default (``None``): on validation the decay moved
        Thompson sampling by less than the defaults' tie band (``benchmarks/defaults.py``).
    group_ridge, fit_group_ridge, fit_group_ridge_halfway, max_groups, refresh_every
        As for :class:`LinUCB`.
    **scaling
        ``scaling``, ``scale_clip``, ``scale_freeze_after`` (see :class:`Policy`).

    Examples
    --------
    >>> p = LinearThompson(["a", "b", "c"], dim=3, seed=7)
    >>> d = p.select([0.5, -1.0, 2.0])
    >>> d.probabilities[d.arm] == d.propensity > 0
    True
    >>> round(sum(d.probabilities.values()), 12)
    1.0
    """

    algorithm = "thompson"

    def __init__(
        self,
        arms: Iterable[str],
        dim: int,
        seed: int = 0,
        *,
        v: float = 0.1,
        ridge: float = 1.0,
        context_ridge: float | None = None,
        propensity_draws: int = 128,
        explore: float = 0.01,
        explore_decay: float | None = None,
        explore_min: float = 0.0,
        group_ridge: float = 16.0,
        fit_group_ridge: bool = True,
        fit_group_ridge_halfway: float = 128.0,
        max_groups: int = 1024,
        refresh_every: int = 1000,
        **scaling: Any,
    ) -> None:
        self.v = check_float("v", v, low=0.0, low_open=True)
        self.ridge = check_float("ridge", ridge, low=0.0, low_open=True)
        self.context_ridge = _check_context_ridge(context_ridge)
        self.propensity_draws = check_int("propensity_draws", propensity_draws, low=1)
        self._check_explore(explore, explore_decay, explore_min)
        self._check_groups(group_ridge, fit_group_ridge, fit_group_ridge_halfway, max_groups)
        self.refresh_every = check_int("refresh_every", refresh_every, low=1)
        super().__init__(arms, dim, seed, **scaling)

    def _choose(self, means: np.ndarray, widths: np.ndarray, idx: np.ndarray,
                rng: np.random.Generator) -> Decision:
        mu = means[idx]
        k = len(idx)
        if k == 1:
            return self._decision(idx, mu, np.ones(1), 0)
        sd = np.sqrt(widths[idx])
        sd *= self.v
        # float32 draws: half the cost of float64, ample for a win-frequency estimate
        draws = self._draw_buffer(k)
        rng.standard_normal(out=draws, dtype=np.float32)
        draws *= sd.astype(np.float32)
        draws += mu.astype(np.float32)
        wins = np.bincount(draws.argmax(axis=1), minlength=k)
        explore = self._explore_now()
        probs = wins * ((1.0 - explore) / self.propensity_draws) + explore / k
        pos = sample_index(probs, rng)
        return self._decision(idx, mu, probs, pos)

    def _draw_buffer(self, k: int) -> np.ndarray:
        """A reusable ``(propensity_draws, k)`` scratch array (not part of the state)."""
        buffers: dict[int, np.ndarray] = self.__dict__.setdefault("_draw_buffers", {})
        buf = buffers.get(k)
        if buf is None:
            buf = buffers[k] = np.empty((self.propensity_draws, k), dtype=np.float32)
        return buf


_GREEDY_PROBABILITIES: dict[tuple[int, int, float], np.ndarray] = {}


def _greedy_probabilities(k: int, best: int, epsilon: float) -> np.ndarray:
    """:func:`epsilon_greedy_probabilities`, computed once per ``(k, best, epsilon)``.

    The result is shared and read-only (LinUCB only reads it).

    >>> _greedy_probabilities(4, 1, 0.2).tolist()
    [0.05, 0.85, 0.05, 0.05]
    >>> _greedy_probabilities(4, 1, 0.2) is _greedy_probabilities(4, 1, 0.2)
    True
    """
    key = (k, best, epsilon)
    probs = _GREEDY_PROBABILITIES.get(key)
    if probs is None:
        probs = epsilon_greedy_probabilities(k, best, epsilon)
        probs.flags.writeable = False
        if len(_GREEDY_PROBABILITIES) >= 4096:
            _GREEDY_PROBABILITIES.clear()
        _GREEDY_PROBABILITIES[key] = probs
    return probs
