"""Off-policy estimators: how would a target policy have done on logged decisions?

Every logged event is ``(context x, arm a, reward r, propensity p)`` where ``p`` is the
probability with which the *logging* policy chose ``a``. The estimators need, per event,
the probability ``pi(a | x)`` the *target* policy gives the logged arm (and, for doubly
robust, the target's full distribution and a reward model's predictions):

* :func:`ips`: inverse propensity scoring, mean of ``w r`` with ``w = pi / p``. Unbiased
  when ``p > 0`` wherever ``pi > 0``.
* :func:`snips`: self-normalised IPS, ``sum(w r) / sum(w)``; slightly biased, much lower
  variance.
* :func:`doubly_robust`: ``sum_b pi(b|x) q(x, b) + w (r - q(x, a))``, unbiased if either
  the propensities or the reward model ``q`` are right (Dudik et al., 2011).
* :func:`replay_estimate`: Li et al. (2011): keep the events where the target picks the
  logged arm, average their rewards. Unbiased for uniformly random logging; events are
  weighted by ``1 / p`` to correct non-uniform logging (``weighted=True``).

Confidence intervals are normal approximations (delta method for the ratio
estimators) or, with ``bootstrap > 0``, percentile bootstrap intervals from a seeded
generator. Each :class:`Estimate` also reports the effective sample size
``(sum w)^2 / sum w^2`` and how many logged events support the estimate (target
probability of the logged arm > 0).

:func:`banditroute.learners.policy_evaluation.evaluate_policy` runs a policy over logged events
and returns all four estimates.

References
----------
Li, Chu, Langford, Wang. "Unbiased offline evaluation of contextual-bandit-based news
article recommendation algorithms." WSDM 2011.
Dudik, Langford, Li. "Doubly robust policy evaluation and learning." ICML 2011.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "Estimate",
    "doubly_robust",
    "effective_sample_size",
    "ips",
    "replay_estimate",
    "snips",
]

ArrayLike = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Estimate:
    """A policy-value estimate with a confidence interval.

    Attributes
    ----------
    value
        Estimated mean reward per decision of the target policy.
    ci_low, ci_high
        Confidence interval at level ``confidence``.
    n
        Logged events used.
    supported
        Events supporting the estimate: target probability of the logged arm > 0 (for
        the replay method, the events where the target chose the logged arm).
    ess
        Effective sample size ``(sum w)^2 / sum w^2`` of the importance weights.
    stderr
        Standard error (normal approximation, or bootstrap standard deviation).
    method
        ``"ips"``, ``"snips"``, ``"dr"`` or ``"replay"``.
    confidence
        Confidence level of the interval.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    supported: int = 0
    ess: float = 0.0
    stderr: float = 0.0
    method: str = ""
    confidence: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON reports)."""
        return asdict(self)


def _arr(name: str, values: ArrayLike) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: values must be finite")
    return out


def _weights(propensities: ArrayLike, target_probabilities: ArrayLike,
             n: int) -> np.ndarray:
    p = _arr("propensities", propensities)
    pi = _arr("target_probabilities", target_probabilities)
    if p.size != n or pi.size != n:
        raise ValueError("propensities: need one propensity and target probability per reward")
    if np.any(p <= 0.0) or np.any(p > 1.0):
        raise ValueError("propensities: must lie in (0, 1]")
    if np.any(pi < 0.0) or np.any(pi > 1.0 + 1e-9):
        raise ValueError("target_probabilities: must lie in [0, 1]")
    return pi / p


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence: must lie in (0, 1)")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def effective_sample_size(weights: ArrayLike) -> float:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` (0 for all-zero weights).

    Examples
    --------
    >>> effective_sample_size([1, 1, 1, 1])
    4.0
    >>> effective_sample_size([4, 0, 0, 0])
    1.0
    """
    w = _arr("weights", weights)
    sq = float(np.sum(w * w))
    return 0.0 if sq == 0.0 else float(np.sum(w)) ** 2 / sq


def _bootstrap(statistic: Callable[[np.ndarray], float], n: int, bootstrap: int, seed: int,
               confidence: float) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    stats = np.empty(bootstrap)
    for b in range(bootstrap):
        stats[b] = statistic(rng.integers(0, n, size=n))
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return float("nan"), float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high), float(np.std(stats, ddof=1)) if stats.size > 1 else 0.0


def _weighted_mean(w: np.ndarray, r: np.ndarray) -> Callable[[np.ndarray], float]:
    """``sum(w r) / sum(w)`` over a bootstrap resample's indices (NaN without weight)."""

    def stat(idx: np.ndarray) -> float:
        ws = float(w[idx].sum())
        return float(np.sum(w[idx] * r[idx]) / ws) if ws > 0 else float("nan")

    return stat


def _mean_estimate(terms: np.ndarray, weights: np.ndarray, method: str, confidence: float,
                   bootstrap: int, seed: int, supported: int) -> Estimate:
    n = terms.size
    if n == 0:
        raise ValueError("rewards: need at least one logged event")
    value = float(terms.mean())
    if bootstrap > 0:
        low, high, se = _bootstrap(lambda idx: float(terms[idx].mean()), n, bootstrap, seed,
                                   confidence)
    else:
        se = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        z = _z(confidence)
        low, high = value - z * se, value + z * se
    return Estimate(value, low, high, n, supported, effective_sample_size(weights), se, method,
                    confidence)


def ips(rewards: ArrayLike, propensities: ArrayLike, target_probabilities: ArrayLike, *,
        confidence: float = 0.95, bootstrap: int = 0, seed: int = 0,
        max_weight: float | None = None) -> Estimate:
    """Inverse propensity scoring estimate of the target policy's mean reward.

    Parameters
    ----------
    rewards
        Logged rewards.
    propensities
        Logging probabilities of the logged arms, in ``(0, 1]``.
    target_probabilities
        Target policy's probability of each logged arm in that context.
    confidence
        Interval level.
    bootstrap
        Number of bootstrap resamples; 0 uses the normal approximation.
    seed
        Seed of the bootstrap generator.
    max_weight
        Clip importance weights at this value (biased, lower variance); None: no clip.

    Examples
    --------
    >>> est = ips([1.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 1.0])
    >>> est.value, est.n, est.supported
    (1.0, 4, 2)
    """
    r = _arr("rewards", rewards)
    w = _weights(propensities, target_probabilities, r.size)
    if max_weight is not None:
        w = np.minimum(w, float(max_weight))
    supported = int(np.count_nonzero(w > 0.0))
    return _mean_estimate(w * r, w, "ips", confidence, bootstrap, seed, supported)


def snips(rewards: ArrayLike, propensities: ArrayLike, target_probabilities: ArrayLike, *,
          confidence: float = 0.95, bootstrap: int = 0, seed: int = 0) -> Estimate:
    """Self-normalised IPS: ``sum(w r) / sum(w)``; delta-method or bootstrap interval.

    Examples
    --------
    >>> est = snips([1.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 1.0])
    >>> est.value, est.supported
    (1.0, 2)
    """
    r = _arr("rewards", rewards)
    w = _weights(propensities, target_probabilities, r.size)
    n = r.size
    if n == 0:
        raise ValueError("rewards: need at least one logged event")
    supported = int(np.count_nonzero(w > 0.0))
    total = float(w.sum())
    if total == 0.0:
        nan = float("nan")
        return Estimate(nan, nan, nan, n, 0, 0.0, nan, "snips", confidence)
    value = float(np.sum(w * r) / total)
    if bootstrap > 0:
        low, high, se = _bootstrap(_weighted_mean(w, r), n, bootstrap, seed, confidence)
    else:
        mean_w = total / n
        resid = w * (r - value) / mean_w
        se = float(np.sqrt(np.sum(resid * resid) / (n * max(n - 1, 1))))
        z = _z(confidence)
        low, high = value - z * se, value + z * se
    return Estimate(value, low, high, n, supported, effective_sample_size(w), se, "snips",
                    confidence)


def doubly_robust(rewards: ArrayLike, propensities: ArrayLike,
                  logged_arms: Sequence[int] | np.ndarray, target_matrix: np.ndarray,
                  predicted_rewards: np.ndarray, *,
                  confidence: float = 0.95, bootstrap: int = 0, seed: int = 0) -> Estimate:
    """Doubly-robust estimate.

    Parameters
    ----------
    rewards, propensities
        As for :func:`ips`.
    logged_arms
        Column index of each logged arm in ``target_matrix``/``predicted_rewards``.
    target_matrix
        ``(n, K)`` target-policy probabilities per arm (rows sum to 1; 0 for arms that
        were not candidates).
    predicted_rewards
        ``(n, K)`` reward-model predictions ``q(x, b)``.

    Examples
    --------
    With a perfect reward model the correction term vanishes:

    >>> pi = np.array([[1.0, 0.0], [0.0, 1.0]]); q = np.array([[1.0, 0.0], [0.0, 0.5]])
    >>> doubly_robust([1.0, 0.0], [0.5, 0.5], [0, 0], pi, q).value
    0.75
    """
    r = _arr("rewards", rewards)
    n = r.size
    pi = np.asarray(target_matrix, dtype=np.float64)
    q = np.asarray(predicted_rewards, dtype=np.float64)
    if pi.ndim != 2 or pi.shape[0] != n or q.shape != pi.shape:
        raise ValueError("target_matrix: expected (n, K) arrays matching the rewards")
    if not (np.all(np.isfinite(pi)) and np.all(np.isfinite(q))):
        raise ValueError("predicted_rewards: values must be finite")
    arms = np.asarray(logged_arms, dtype=np.int64)
    if arms.shape != (n,) or np.any(arms < 0) or np.any(arms >= pi.shape[1]):
        raise ValueError("logged_arms: need one valid column index per reward")
    rows = np.arange(n)
    w = _weights(propensities, pi[rows, arms], n)
    terms = np.sum(pi * q, axis=1) + w * (r - q[rows, arms])
    supported = int(np.count_nonzero(w > 0.0))
    return _mean_estimate(terms, w, "dr", confidence, bootstrap, seed, supported)


def replay_estimate(rewards: ArrayLike, logged_arms: Sequence[object],
                    target_arms: Sequence[object], propensities: ArrayLike | None = None, *,
                    weighted: bool = False, confidence: float = 0.95, bootstrap: int = 0,
                    seed: int = 0) -> Estimate:
    """Li et al. replay method: mean reward over events where target arm == logged arm.

    With ``weighted=True`` (needs ``propensities``) matched events are weighted by
    ``1 / p``, which removes the bias under non-uniform logging.

    Examples
    --------
    >>> est = replay_estimate([1.0, 0.0, 0.5], ["a", "b", "a"], ["a", "a", "a"])
    >>> est.value, est.supported, est.n
    (0.75, 2, 3)
    """
    r = _arr("rewards", rewards)
    n = r.size
    if len(logged_arms) != n or len(target_arms) != n:
        raise ValueError("target_arms: need one logged and one target arm per reward")
    match = np.array([a == b for a, b in zip(logged_arms, target_arms, strict=True)], dtype=bool)
    if weighted:
        if propensities is None:
            raise ValueError("propensities: required when weighted=True")
        p = _arr("propensities", propensities)
        if p.size != n or np.any(p <= 0.0) or np.any(p > 1.0):
            raise ValueError("propensities: must lie in (0, 1], one per reward")
        w = match / p
    else:
        w = match.astype(np.float64)
    m = int(match.sum())
    if m == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, n, 0, 0.0, nan, "replay", confidence)
    total = float(w.sum())
    value = float(np.sum(w * r) / total)
    if bootstrap > 0:
        low, high, se = _bootstrap(_weighted_mean(w, r), n, bootstrap, seed, confidence)
    else:
        resid = w[match] * (r[match] - value) / (total / m)
        se = float(np.sqrt(np.sum(resid * resid) / (m * max(m - 1, 1))))
        z = _z(confidence)
        low, high = value - z * se, value + z * se
    return Estimate(value, low, high, n, m, effective_sample_size(w), se, "replay", confidence)
