"""Always-valid confidence sequences and p-values for A/B statistics.

An experiment's dashboard is looked at continuously, and guardrails are evaluated every few
seconds. A fixed-horizon t-test re-run at each look has a false-positive rate far above its
nominal level; the intervals here stay valid at *every* sample size simultaneously, so one may
peek, stop or continue at any time.

Method: the mixture sequential probability ratio test (mSPRT) with a normal mixture
(Robbins 1970; Johari, Koomen, Pekelis & Walsh, "Always Valid Inference", 2017/2022; Howard,
Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
2021). For an estimate ``D`` of ``theta`` with (plug-in) variance ``s2`` and a ``N(null, tau2)``
mixture over the alternative, the mixture likelihood ratio is::

    Lambda = sqrt(s2 / (s2 + tau2)) * exp(tau2 * (D - null)**2 / (2 * s2 * (s2 + tau2)))

``Lambda`` is a nonnegative martingale under the null, so by Ville's inequality
``P(sup_n Lambda_n >= 1/alpha) <= alpha``. Hence ``p = min(1, 1/Lambda)`` is an always-valid
p-value (:class:`SequentialTest` also keeps its running minimum), and inverting the test gives
the confidence sequence ``D +- half_width`` with::

    half_width**2 = 2 * s2 * (s2 + tau2) / tau2 * (log(1/alpha) + log((s2 + tau2) / s2) / 2)

The validity is asymptotic in the usual way (a CLT for the means and a plug-in variance, as in
Johari et al.). The mixture variance ``tau2`` only trades early against late power; by default
it is tuned (:func:`tuned_mixture_variance`) to make the interval narrowest when each arm has
``target_n`` observations.

Examples
--------
>>> a = MeanSummary.from_values([1.0, 0.0, 1.0, 1.0] * 250)
>>> b = MeanSummary.from_values([0.0, 0.0, 1.0, 1.0] * 250)
>>> d = difference(a, b, alpha=0.05)
>>> round(d.estimate, 2), d.low > 0, d.p_value < 0.05
(0.25, True, True)
>>> same = difference(a, a, alpha=0.05)
>>> same.low < 0 < same.high, same.p_value
(True, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_TARGET_N",
    "Difference",
    "Interval",
    "MeanSummary",
    "SequentialTest",
    "always_valid_p_value",
    "confidence_sequence",
    "difference",
    "mean_interval",
    "mixture_log_likelihood_ratio",
    "tuned_mixture_variance",
]

#: Sample size per arm at which the default mixture makes intervals narrowest.
DEFAULT_TARGET_N = 1000


def _check_alpha(alpha: float) -> float:
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        raise TypeError(f"alpha must be a real number, got {type(alpha).__name__}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


def mixture_log_likelihood_ratio(
    estimate: float, variance: float, tau2: float, null: float = 0.0
) -> float:
    """Log of the normal-mixture likelihood ratio ``Lambda`` of ``estimate`` against ``null``.

    Parameters
    ----------
    estimate
        The observed estimate ``D`` (e.g. a difference of means).
    variance
        Variance of the estimate ``s2`` (e.g. ``var_a / n_a + var_b / n_b``); must be > 0.
    tau2
        Variance of the normal mixture over the effect; must be > 0.
    null
        Value of the parameter under the null hypothesis.

    Examples
    --------
    >>> mixture_log_likelihood_ratio(0.0, 1.0, 1.0) == 0.5 * math.log(0.5)
    True
    """
    if variance <= 0 or tau2 <= 0:
        raise ValueError(f"variance and tau2 must be > 0, got {variance!r}, {tau2!r}")
    z = estimate - null
    return 0.5 * math.log(variance / (variance + tau2)) + tau2 * z * z / (
        2.0 * variance * (variance + tau2)
    )


def always_valid_p_value(estimate: float, variance: float, tau2: float, null: float = 0.0) -> float:
    """``min(1, 1 / Lambda)``: a p-value valid at any (data-dependent) stopping time.

    Examples
    --------
    >>> always_valid_p_value(0.0, 0.01, 0.01)
    1.0
    >>> always_valid_p_value(0.5, 0.01, 0.01) < 0.01
    True
    """
    llr = mixture_log_likelihood_ratio(estimate, variance, tau2, null)
    return 1.0 if llr <= 0 else math.exp(-llr)


def confidence_sequence(
    estimate: float, variance: float, tau2: float, alpha: float
) -> tuple[float, float]:
    """The ``1 - alpha`` always-valid interval: every ``theta`` the mSPRT does not reject.

    Examples
    --------
    >>> lo, hi = confidence_sequence(0.0, 0.01, 0.01, 0.05)
    >>> round(hi, 4), lo == -hi
    (0.3656, True)
    """
    alpha = _check_alpha(alpha)
    if variance <= 0 or tau2 <= 0:
        raise ValueError(f"variance and tau2 must be > 0, got {variance!r}, {tau2!r}")
    half = math.sqrt(
        2.0
        * variance
        * (variance + tau2)
        / tau2
        * (math.log(1.0 / alpha) + 0.5 * math.log((variance + tau2) / variance))
    )
    return estimate - half, estimate + half


def tuned_mixture_variance(target_variance: float, alpha: float) -> float:
    """``tau2`` that makes the interval narrowest when the estimate's variance is
    ``target_variance``.

    Writing ``r = tau2 / s2``, the squared half-width is proportional to
    ``(1 + 1/r) * (log(1/alpha) + log(1 + r) / 2)``, minimal where ``r = 2 log(1/alpha) +
    log(1 + r)`` (solved by fixed-point iteration).

    Examples
    --------
    >>> round(tuned_mixture_variance(1.0, 0.05), 3)
    8.212
    """
    alpha = _check_alpha(alpha)
    if target_variance <= 0:
        raise ValueError(f"target_variance must be > 0, got {target_variance!r}")
    log_inv = math.log(1.0 / alpha)
    r = 2.0 * log_inv
    for _ in range(100):
        r_next = 2.0 * log_inv + math.log1p(r)
        if abs(r_next - r) < 1e-12:
            break
        r = r_next
    return r * target_variance


@dataclass(frozen=True)
class MeanSummary:
    """Sufficient statistics of a sample: count, mean and unbiased variance.

    Examples
    --------
    >>> MeanSummary.from_values([1.0, 2.0, 3.0])
    MeanSummary(n=3, mean=2.0, variance=1.0)
    >>> MeanSummary.from_sums(3, 6.0, 14.0)
    MeanSummary(n=3, mean=2.0, variance=1.0)
    """

    n: int
    mean: float
    variance: float

    @classmethod
    def from_values(cls, values: Iterable[float]) -> MeanSummary:
        """Summarize a sample (NaN values are dropped)."""
        x = np.asarray(list(values), dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return cls(0, math.nan, math.nan)
        var = float(x.var(ddof=1)) if x.size > 1 else math.nan
        return cls(int(x.size), float(x.mean()), var)

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> MeanSummary:
        """Summarize from ``n``, ``sum(x)`` and ``sum(x**2)`` (what SQL aggregates give)."""
        if n <= 0:
            return cls(0, math.nan, math.nan)
        mean = total / n
        var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.nan
        return cls(int(n), float(mean), float(var))


@dataclass(frozen=True)
class Interval:
    """A point estimate with an always-valid interval, over ``n`` observations."""

    estimate: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Difference:
    """``a - ratio * b`` with its always-valid interval and p-value (null: difference 0)."""

    estimate: float
    low: float
    high: float
    p_value: float
    n_a: int
    n_b: int


_MIN_VARIANCE = 1e-12


def _variance_floor(*variances: float) -> float:
    finite = [v for v in variances if math.isfinite(v)]
    return max(max(finite, default=0.0), _MIN_VARIANCE)


def mean_interval(
    summary: MeanSummary, alpha: float = 0.05, target_n: int = DEFAULT_TARGET_N
) -> Interval:
    """Always-valid interval for one mean (NaN bounds with fewer than 2 observations).

    Examples
    --------
    >>> iv = mean_interval(MeanSummary.from_values([0.0, 1.0] * 500))
    >>> iv.low < 0.5 < iv.high, iv.n
    (True, 1000)
    """
    if summary.n < 2:
        return Interval(summary.mean, math.nan, math.nan, summary.n)
    var1 = _variance_floor(summary.variance)
    s2 = var1 / summary.n
    tau2 = tuned_mixture_variance(var1 / max(target_n, 1), alpha)
    low, high = confidence_sequence(summary.mean, s2, tau2, alpha)
    return Interval(summary.mean, low, high, summary.n)


def difference(
    a: MeanSummary,
    b: MeanSummary,
    alpha: float = 0.05,
    *,
    ratio: float = 1.0,
    target_n: int = DEFAULT_TARGET_N,
) -> Difference:
    """Always-valid interval and p-value for ``mean_a - ratio * mean_b``.

    ``ratio`` other than 1 tests relative margins, e.g. ``ratio=1.2`` asks whether ``a``'s mean
    exceeds ``b``'s by more than 20%. With fewer than 2 observations on either side the result
    is uninformative (NaN bounds, p-value 1).

    Examples
    --------
    >>> a = MeanSummary(n=400, mean=1.3, variance=0.04)
    >>> b = MeanSummary(n=400, mean=1.0, variance=0.04)
    >>> difference(a, b, ratio=1.2).low > 0
    True
    >>> difference(a, b, ratio=1.4).high < 0
    True
    """
    alpha = _check_alpha(alpha)
    est = a.mean - ratio * b.mean if a.n and b.n else math.nan
    if a.n < 2 or b.n < 2:
        return Difference(est, math.nan, math.nan, 1.0, a.n, b.n)
    va = _variance_floor(a.variance)
    vb = _variance_floor(b.variance)
    s2 = va / a.n + ratio * ratio * vb / b.n
    tau2 = tuned_mixture_variance((va + ratio * ratio * vb) / max(target_n, 1), alpha)
    low, high = confidence_sequence(est, s2, tau2, alpha)
    return Difference(est, low, high, always_valid_p_value(est, s2, tau2), a.n, b.n)


class SequentialTest:
    """Running always-valid p-value and interval across repeated looks.

    Each :meth:`observe` call takes the current :class:`Difference`; the p-value reported is the
    running minimum and the interval the running intersection, both still valid at any stopping
    time (Johari et al. 2017, section 3; Howard et al. 2021, section 3.2).

    Examples
    --------
    >>> t = SequentialTest()
    >>> t.observe(Difference(0.1, -0.1, 0.3, 0.4, 50, 50))
    Difference(estimate=0.1, low=-0.1, high=0.3, p_value=0.4, n_a=50, n_b=50)
    >>> t.observe(Difference(0.05, -0.05, 0.15, 0.6, 100, 100))
    Difference(estimate=0.05, low=-0.05, high=0.15, p_value=0.4, n_a=100, n_b=100)
    """

    def __init__(self) -> None:
        self._low = -math.inf
        self._high = math.inf
        self._p = 1.0

    def observe(self, current: Difference) -> Difference:
        """Fold in the current look; return the running (intersected) result."""
        if math.isfinite(current.low):
            self._low = max(self._low, current.low)
        if math.isfinite(current.high):
            self._high = min(self._high, current.high)
        self._p = min(self._p, current.p_value)
        return Difference(
            current.estimate, self._low, self._high, self._p, current.n_a, current.n_b
        )
