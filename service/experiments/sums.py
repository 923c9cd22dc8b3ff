"""Exact, mergeable accumulators behind an experiment's live status (private to
:mod:`banditroute.service.experiments.live`).

:class:`Moments` keeps a count, sum and sum of squares that rows can be added to and taken out
of (a late rating replaces a reward); :class:`VariantSums` holds a served variant's moments,
spend and latencies; :class:`OffPolicySums` the sufficient statistics of IPS, SNIPS and doubly
robust estimates, which are sums of per-decision terms.

Examples
--------
>>> m = Moments()
>>> m.add(1.0, 1); m.add(3.0, 1); m.add(1.0, -1)
>>> m.n, m.total, m.total_sq
(1, 3.0, 9.0)
>>> percentile_cont(np.array([1.0, 2.0, 3.0, 10.0]), 0.5)
2.5
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import numpy as np

from banditroute.learners.evaluation import Estimate
from banditroute.learners.sequential import MeanSummary

#: Width of the time cells of the reward series (every dashboard stride is a multiple).
CELL = timedelta(minutes=2)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


HOUR = timedelta(hours=1)


def floor_to(t: datetime, stride: timedelta) -> datetime:
    return EPOCH + ((t - EPOCH) // stride) * stride


def cell_of(t: datetime) -> datetime:
    """Start of ``t``'s :data:`CELL`, aligned as ``date_bin(CELL, t, epoch)``."""
    return floor_to(t, CELL)


def percentile_cont(values: np.ndarray, p: float) -> float:
    """PostgreSQL's ``percentile_cont(p) WITHIN GROUP (ORDER BY x)`` of sorted ``values``."""
    n = int(values.size)
    if n == 0:
        return math.nan
    pos = p * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    first = float(values[lo])
    if hi == lo:
        return first
    return first + (float(values[hi]) - first) * (pos - lo)


@dataclass
class Moments:
    """Count, sum and sum of squares, with additions and retractions."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, x: float, sign: int) -> None:
        """Add (``sign`` 1) or retract (-1) one value."""
        self.n += sign
        self.total += sign * x
        self.total_sq += sign * x * x

    def merge(self, o: Moments) -> None:
        """Add ``o`` in place."""
        self.n += o.n
        self.total += o.total
        self.total_sq += o.total_sq

    @property
    def summary(self) -> MeanSummary:
        """As a :class:`~banditroute.learners.sequential.MeanSummary`."""
        return MeanSummary.from_sums(self.n, self.total, self.total_sq)


@dataclass
class VariantSums:
    """What a served variant's status row needs, but its decision count."""

    outcomes: int = 0
    reward: Moments = field(default_factory=Moments)
    quality: Moments = field(default_factory=Moments)
    cost: Moments = field(default_factory=Moments)
    latencies: np.ndarray = field(default_factory=lambda: np.empty(0))
    _pending: list[float] = field(default_factory=list)

    def sorted_latencies(self) -> np.ndarray:
        """Every outcome's latency, sorted (pending ones merged in)."""
        if self._pending:
            new = np.sort(np.asarray(self._pending, dtype=np.float64))
            self.latencies = np.insert(self.latencies, np.searchsorted(self.latencies, new), new)
            self._pending.clear()
        return self.latencies


@dataclass(frozen=True)
class Group:
    """Logged decisions of one logged model with one target distribution, as the off-policy
    sums take them: ``sums`` are ``(n, sum r, sum r^2, sum u, sum u^2, sum u r, sum u^2 r,
    sum u^2 r^2)`` with ``u = 1 / propensity`` (negated to retract); ``served``: the target
    variant served them (its probability of the logged model is the propensity)."""

    served: bool
    model: str
    dist: Mapping[str, float]
    sums: tuple[float, ...]


def row_group(
    served: bool, model: str, dist: Mapping[str, float], p: float, r: float, sign: int
) -> Group:
    """One decision (``sign`` 1 to add, -1 to retract) as a :class:`Group`."""
    u = 1.0 / p
    return Group(
        served,
        model,
        dist,
        (
            sign,
            sign * r,
            sign * r * r,
            sign * u,
            sign * u * u,
            sign * u * r,
            sign * u * u * r,
            sign * u * u * r * r,
        ),
    )


class OffPolicySums:
    """Sufficient statistics of the IPS, SNIPS and DR estimates of one target variant.

    Per logged decision ``i`` included for the target (the target's own served decisions, and
    the decisions on which its shadow scoring logged a distribution): reward ``r``, logging
    propensity ``p``, the target probability of the logged arm ``t`` (IPS and SNIPS weight
    ``w = t / p``), the target's distribution ``pi`` over arms and ``d = pi[a] / p`` (the DR
    weight). :func:`banditroute.learners.evaluation.doubly_robust` with the per-arm mean reward
    ``q`` as reward model has terms ``T = pi . q + d (r - q[a])``; since ``q`` is known only at
    the end, the sums of ``T`` and ``T^2`` are expanded into sums that do not depend on ``q``:
    per arm ``b`` and logged arm ``a``, ``sum pi(b)``, ``sum pi(b) pi(c)``, ``sum pi(b) d r``,
    ``sum_{a_i=a} pi(b) d``, and per logged arm the counts and sums of ``r``, ``d``, ``d^2``,
    ``d^2 r``.
    """

    def __init__(self) -> None:
        self.arms: dict[str, int] = {}
        self.n = 0
        # IPS / SNIPS
        self.w_pos = 0
        self.s_w = self.s_w2 = self.s_wr = self.s_w2r = self.s_w2r2 = 0.0
        # DR
        self.d_pos = 0
        self.s_dr = self.s_d2r2 = 0.0
        k = 0
        self.cnt = np.zeros(k)
        self.sum_r = np.zeros(k)
        self.sum_d = np.zeros(k)
        self.sum_d2 = np.zeros(k)
        self.sum_d2r = np.zeros(k)
        self.pi = np.zeros(k)
        self.pi_dr = np.zeros(k)
        self.pi_pi = np.zeros((k, k))
        self.pi_d = np.zeros((k, k))  # [b, a]: sum over logged arm a of pi(b) d

    def _grow(self, names: Iterable[str]) -> None:
        new = [a for a in names if a not in self.arms]
        if not new:
            return
        for a in new:
            self.arms[a] = len(self.arms)
        k, extra = len(self.arms), len(new)
        for name in ("cnt", "sum_r", "sum_d", "sum_d2", "sum_d2r", "pi", "pi_dr"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra)]))
        for name in ("pi_pi", "pi_d"):
            m = np.zeros((k, k))
            old = getattr(self, name)
            m[: old.shape[0], : old.shape[1]] = old
            setattr(self, name, m)

    def add(self, groups: Sequence[Group]) -> None:
        """Add groups of logged decisions (negative sums retract)."""
        if not groups:
            return
        self._grow(sorted({a for g in groups for a in g.dist} | {g.model for g in groups}))
        k = len(self.arms)
        pi = np.zeros((len(groups), k))
        for i, g in enumerate(groups):
            for arm, prob in g.dist.items():
                pi[i, self.arms[arm]] = float(prob)
        a = np.asarray([self.arms[g.model] for g in groups], dtype=np.int64)
        sums = np.asarray([g.sums for g in groups], dtype=np.float64)
        n, sr, sr2, su, su2, sur, su2r, su2r2 = sums.T
        served = np.asarray([g.served for g in groups], dtype=bool)
        c = pi[np.arange(len(groups)), a]  # the target's probability of the logged arm
        pos = c > 0.0
        self.n += round(float(n.sum()))
        # IPS/SNIPS weight w = target / p: 1 on the variant's own decisions, c / p on others.
        sh = ~served
        self.w_pos += round(float(n[served].sum() + n[sh & pos].sum()))
        self.s_w += float(n[served].sum() + (c * su)[sh].sum())
        self.s_w2 += float(n[served].sum() + (c * c * su2)[sh].sum())
        self.s_wr += float(sr[served].sum() + (c * sur)[sh].sum())
        self.s_w2r += float(sr[served].sum() + (c * c * su2r)[sh].sum())
        self.s_w2r2 += float(sr2[served].sum() + (c * c * su2r2)[sh].sum())
        # DR weight d = pi[a] / p on every decision.
        self.d_pos += round(float(n[pos].sum()))
        self.s_dr += float((c * sur).sum())
        self.s_d2r2 += float((c * c * su2r2).sum())
        self.cnt += np.bincount(a, weights=n, minlength=k)
        self.sum_r += np.bincount(a, weights=sr, minlength=k)
        self.sum_d += np.bincount(a, weights=c * su, minlength=k)
        self.sum_d2 += np.bincount(a, weights=c * c * su2, minlength=k)
        self.sum_d2r += np.bincount(a, weights=c * c * su2r, minlength=k)
        self.pi += n @ pi
        self.pi_dr += (c * sur) @ pi
        self.pi_pi += (pi * n[:, None]).T @ pi
        onehot = np.zeros((len(groups), k))
        onehot[np.arange(len(groups)), a] = 1.0
        self.pi_d += (pi * (c * su)[:, None]).T @ onehot

    def estimates(self, confidence: float) -> tuple[Estimate, Estimate, Estimate] | None:
        """IPS, SNIPS and DR as :func:`banditroute.learners.evaluation.ips`, ``snips`` and
        ``doubly_robust`` give them on the included decisions (None if fewer than 2)."""
        n = self.n
        if n < 2:
            return None
        z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
        nan = math.nan

        def ess(total: float, total_sq: float) -> float:
            return 0.0 if total_sq == 0.0 else total * total / total_sq

        def mean_estimate(
            total: float, total_sq: float, e: float, pos: int, method: str
        ) -> Estimate:
            mean = total / n
            var = max(total_sq - n * mean * mean, 0.0) / (n - 1)
            se = math.sqrt(var) / math.sqrt(n)
            return Estimate(mean, mean - z * se, mean + z * se, n, pos, e, se, method, confidence)

        w_ess = ess(self.s_w, self.s_w2)
        ips = mean_estimate(self.s_wr, self.s_w2r2, w_ess, self.w_pos, "ips")
        if self.s_w == 0.0:
            snips = Estimate(nan, nan, nan, n, 0, 0.0, nan, "snips", confidence)
        else:
            v = self.s_wr / self.s_w
            mean_w = self.s_w / n
            resid = max(self.s_w2r2 - 2.0 * v * self.s_w2r + v * v * self.s_w2, 0.0)
            se = math.sqrt(resid) / mean_w / math.sqrt(n * max(n - 1, 1))
            snips = Estimate(
                v, v - z * se, v + z * se, n, self.w_pos, w_ess, se, "snips", confidence
            )
        overall = float(self.sum_r.sum()) / n
        q = np.where(self.cnt > 0, self.sum_r / np.where(self.cnt > 0, self.cnt, 1.0), overall)
        sum_t = float(self.pi @ q) + self.s_dr - float(q @ self.sum_d)
        sum_t2 = (
            float(q @ self.pi_pi @ q)
            + 2.0 * (float(q @ self.pi_dr) - float(q @ self.pi_d @ q))
            + self.s_d2r2
            - 2.0 * float(q @ self.sum_d2r)
            + float((q * q) @ self.sum_d2)
        )
        d_ess = ess(float(self.sum_d.sum()), float(self.sum_d2.sum()))
        dr = mean_estimate(sum_t, sum_t2, d_ess, self.d_pos, "dr")
        return ips, snips, dr
