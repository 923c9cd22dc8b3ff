"""Per-group effects on top of per-arm ridge regression (private).

A *group* is a label the caller knows about a request, such as the task, product feature or
tenant it comes from (``categorical_context`` in the service). Hashing it into a few feature
slots cannot separate dozens of values; giving each value its own coefficient per arm can, and
is what lets the router learn "on this kind of request, this model wins" in a handful of
events while the prompt features still carry everything it learnt to requests of a new group.

The model of arm ``a`` is ``r = z'theta_a + beta_{a,g} + noise``: ridge regression with one
fixed effect per group, the effects with prior precision ``gamma`` (``beta ~ N(0, 1/gamma)``).
Its exact solution needs no ``(p + G)``-sized matrix. Per arm and group keep ``n_g`` (events),
``s_g`` (sum of ``z``) and ``c_g`` (sum of rewards), and let ``a = n_g + gamma``. Eliminating
the effects leaves the ``p``-dimensional system ``P theta = q`` with ``P = A - sum s s'/a`` and
``q = b - sum s c/a``, and adding one event ``(z, r)`` to group ``g`` changes it by one
rank-one update::

    w = z - s_g / a,   f = sqrt(a / (a + 1)),   P += (f w)(f w)',   q += (f w)(f (r - c_g / a))

so :class:`~banditroute.learners._ridge.RidgeArms` keeps ``P`` and ``q`` with its usual
Sherman-Morrison update. For context ``z`` in group ``g`` the posterior mean is
``w'theta + c_g/a`` and the variance ``w'P^-1 w + 1/a``; a group never seen has ``w = z`` and
variance ``z'P^-1 z + 1/gamma``. Requests without a group are learnt as before (no effect), so
a policy that never sees a group behaves bit for bit as one without this module.

Examples
--------
>>> import numpy as np
>>> from banditroute.learners._ridge import RidgeArms, exact_array
>>> ridge, groups = RidgeArms(p=1, ridge=1.0), GroupEffects(p=1, prior=1.0, capacity=8)
>>> ridge.grow(); groups.grow()
>>> for r in (1.0, 1.0, 1.0):
...     groups.learn(ridge, 0, np.array([1.0]), r, "task=maths")
>>> mean, var = groups.means_and_widths(ridge, np.array([1.0]), "task=maths")
>>> round(float(mean[0]), 3), round(float(var[0]), 3)  # exact joint ridge: 6/7, 2/7
(0.857, 0.286)
>>> groups.means_and_widths(ridge, np.array([1.0]), "task=french")[1].round(3).tolist()
[1.571]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from banditroute.learners._ridge import RidgeArms, exact_array

__all__ = ["GroupEffects"]


class GroupEffects:
    """Sufficient statistics of the per-arm group effects, for at most ``capacity`` groups.

    Groups are stored in the order they are first learnt; once ``capacity`` groups are stored,
    a new one is learnt and scored as if it had no group (deterministic: it depends only on the
    order of the events, which the event log fixes).
    """

    def __init__(self, p: int, prior: float, capacity: int) -> None:
        self.p = p
        self.prior = float(prior)
        self.capacity = capacity
        self.rows: dict[str, int] = {}
        self.sums = np.zeros((0, 0, p))  # (G, K, p): sum of z per group and arm
        self.n = np.zeros((0, 0))  # (G, K): events per group and arm
        self.rewards = np.zeros((0, 0))  # (G, K): sum of rewards per group and arm
        self.squares = np.zeros((0, 0))  # (G, K): sum of squared rewards per group and arm
        self.events = 0  # events learnt with a group's effects (the sum of ``n``)

    def grow(self) -> None:
        """Add an arm with no events in any group."""
        rows = self.n.shape[0]
        self.sums = np.concatenate([self.sums, np.zeros((rows, 1, self.p))], axis=1)
        self.n = np.concatenate([self.n, np.zeros((rows, 1))], axis=1)
        self.rewards = np.concatenate([self.rewards, np.zeros((rows, 1))], axis=1)
        self.squares = np.concatenate([self.squares, np.zeros((rows, 1))], axis=1)

    def _row(self, group: str) -> int | None:
        row = self.rows.get(group)
        if row is None and len(self.rows) < self.capacity:
            row = self.rows[group] = len(self.rows)
            if row == self.n.shape[0]:  # full: double the rows (amortised O(1) per group)
                more, k = max(8, row), self.n.shape[1]
                self.sums = np.concatenate([self.sums, np.zeros((more, k, self.p))])
                self.n = np.concatenate([self.n, np.zeros((more, k))])
                self.rewards = np.concatenate([self.rewards, np.zeros((more, k))])
                self.squares = np.concatenate([self.squares, np.zeros((more, k))])
        return row

    def learn(self, ridge: RidgeArms, i: int, z: np.ndarray, reward: float, group: str) -> None:
        """Learn ``(z, reward)`` for arm ``i`` in ``group`` (one rank-one update of ``ridge``)."""
        row = self._row(group)
        if row is None:
            ridge.learn(i, z, reward)
            return
        a = self.n[row, i] + self.prior
        f = math.sqrt(a / (a + 1.0))
        w = z - self.sums[row, i] / a
        ridge.learn(i, f * w, f * (reward - self.rewards[row, i] / a))
        self.sums[row, i] += z
        self.n[row, i] += 1.0
        self.rewards[row, i] += reward
        self.squares[row, i] += reward * reward
        self.events += 1

    def relearn(self, ridge: RidgeArms, i: int, z: np.ndarray, old: float, new: float,
                group: str) -> None:
        """Exactly replace reward ``old`` by ``new`` for a learnt event of ``group``."""
        row = self.rows.get(group)
        if row is None:
            ridge.relearn(i, z, old, new)
            return
        ridge.relearn(i, z - self.sums[row, i] / (self.n[row, i] + self.prior), old, new)
        self.rewards[row, i] += new - old
        self.squares[row, i] += new * new - old * old

    def set_prior(self, ridge: RidgeArms, prior: float) -> None:
        """Change the effects' prior precision to ``prior``, exactly: ``P`` and ``q`` become
        what learning every event with it would have given (``P = A - sum s s'/(n + prior)``,
        so each stored group moves them by ``s s'`` and ``s c`` times ``1/(n + old) - 1/(n +
        new)``), and ``ridge`` is re-solved."""
        prior = float(prior)
        g = len(self.rows)
        if g and prior != self.prior:
            n = self.n[:g]
            d = 1.0 / (n + self.prior) - 1.0 / (n + prior)  # (G, K)
            s = self.sums[:g].transpose(1, 0, 2)  # (K, G, p)
            ridge.A += np.matmul(s.transpose(0, 2, 1) * d.T[:, None, :], s)  # sum_g d s s'
            ridge.b += np.einsum("kg,kgp->kp", (d * self.rewards[:g]).T, s)
            ridge.recompute()
        self.prior = prior

    def estimate_prior(self, ridge: RidgeArms, low: float, high: float,
                       start: float | None = None, halfway: float = 0.0) -> float | None:
        """Empirical-Bayes prior precision of the effects, in ``[low, high]``, or None while
        fewer than two groups or eight (group, arm) cells have two events or more.

        Method of moments on the (group, arm) cells with events: the noise variance
        ``sigma^2`` is the pooled within-cell variance of the rewards (it also holds what the
        features explain inside a cell, so it errs towards a stronger prior), and the effects'
        variance ``tau^2`` is the mean of ``e^2 - sigma^2 / n`` over cells, where ``e`` is a
        cell's mean residual from the features' fit. The precision is ``sigma^2 / tau^2``: large
        when groups differ little beyond noise, small when they differ a lot. With ``halfway``
        > 0 it is pulled towards ``start`` on a log scale, halfway when ``halfway`` cells have
        two events or more (few cells make a noisy estimate).
        """
        g = len(self.rows)
        if g < 2:
            return None
        n, c = self.n[:g], self.rewards[:g]
        seen, several = n > 0, n > 1
        cells = int(several.sum())
        if cells < 8:  # too few repeated cells to tell effects from noise
            return None
        within = self.squares[:g] - c * c / np.maximum(n, 1.0)
        sigma2 = max(float(within[several].sum()) / float((n[several] - 1.0).sum()), 1e-4)
        predicted = np.einsum("gkp,kp->gk", self.sums[:g], ridge.theta)
        e = (c - predicted)[seen] / n[seen]
        tau2 = float(np.mean(e * e - sigma2 / n[seen]))
        raw = high if tau2 <= sigma2 / high else min(max(sigma2 / tau2, low), high)
        if halfway <= 0.0 or start is None:
            return raw
        w = cells / (cells + halfway)  # trust grows with the cells behind the estimate
        return math.exp(w * math.log(raw) + (1.0 - w) * math.log(start))

    def means_and_widths(self, ridge: RidgeArms, z: np.ndarray, group: str,
                         intercept_prior: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Per-arm posterior mean and variance for context ``z`` in ``group``.

        ``intercept_prior`` as in :meth:`RidgeArms.means_and_widths`. A group without its own
        effects (capacity reached) is scored as having none.
        """
        row = self.rows.get(group)
        if row is None:
            means, widths = ridge.means_and_widths(z, intercept_prior)
            if len(self.rows) < self.capacity:
                widths += 1.0 / self.prior
            return means, widths
        a = self.n[row] + self.prior  # (K,)
        w = z - self.sums[row] / a[:, None]  # (K, p)
        u = np.matmul(ridge.A_inv, w[:, :, None])[:, :, 0]  # A^-1 w per arm (A^-1 symmetric)
        means = np.einsum("kp,kp->k", ridge.theta, w) + self.rewards[row] / a
        if intercept_prior:
            means += (intercept_prior * float(ridge.ridge[-1])) * u[:, -1]
        widths = np.einsum("kp,kp->k", u, w)
        widths += 1.0 / a
        np.maximum(widths, 0.0, out=widths)
        return means, widths

    def get_state(self) -> dict[str, Any]:
        g = len(self.rows)
        return {
            "group_keys": list(self.rows),
            "group_sums": self.sums[:g].copy(),
            "group_n": self.n[:g].copy(),
            "group_rewards": self.rewards[:g].copy(),
            "group_squares": self.squares[:g].copy(),
            "group_prior": self.prior,
        }

    def set_state(self, state: dict[str, Any], k: int) -> None:
        keys = [str(key) for key in state.get("group_keys", [])]
        g = len(keys)
        self.rows = {key: j for j, key in enumerate(keys)}
        f64 = np.float64
        self.sums = exact_array(state.get("group_sums", np.zeros((g, k, self.p))),
                                (g, k, self.p), f64)
        self.n = exact_array(state.get("group_n", np.zeros((g, k))), (g, k), f64)
        self.rewards = exact_array(state.get("group_rewards", np.zeros((g, k))), (g, k), f64)
        self.squares = exact_array(state.get("group_squares", np.zeros((g, k))), (g, k), f64)
        self.prior = float(state.get("group_prior", self.prior))
        self.events = int(self.n.sum())

