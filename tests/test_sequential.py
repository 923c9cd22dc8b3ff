"""Always-valid inference (banditroute.learners.sequential): valid under continuous peeking, and
powerful."""

from __future__ import annotations

import math

import numpy as np
import pytest

from banditroute.learners.sequential import (
    MeanSummary,
    SequentialTest,
    always_valid_p_value,
    confidence_sequence,
    difference,
    mean_interval,
    mixture_log_likelihood_ratio,
)

ALPHA = 0.05


def _peeked_rejections(
    effect: float, *, seed: int, sims: int = 300, steps: int = 2000, every: int = 25
) -> tuple[float, float]:
    """Fraction of simulated A/B tests that EVER reject (always-valid vs naive z-test) when
    looked at every ``every`` observations per arm."""
    rng = np.random.default_rng(seed)
    a = rng.binomial(1, 0.5 + effect, size=(sims, steps)).astype(float)
    b = rng.binomial(1, 0.5, size=(sims, steps)).astype(float)
    sa, sb = a.cumsum(axis=1), b.cumsum(axis=1)
    qa, qb = (a * a).cumsum(axis=1), (b * b).cumsum(axis=1)
    ever_valid = np.zeros(sims, dtype=bool)
    ever_naive = np.zeros(sims, dtype=bool)
    for n in range(every, steps + 1, every):
        for i in range(sims):
            if ever_valid[i] and ever_naive[i]:
                continue
            ma = MeanSummary.from_sums(n, sa[i, n - 1], qa[i, n - 1])
            mb = MeanSummary.from_sums(n, sb[i, n - 1], qb[i, n - 1])
            d = difference(ma, mb, ALPHA)
            ever_valid[i] |= d.p_value < ALPHA
            se = math.sqrt(max(ma.variance, 1e-12) / n + max(mb.variance, 1e-12) / n)
            ever_naive[i] |= abs(d.estimate) / se > 1.96
    return float(ever_valid.mean()), float(ever_naive.mean())


def test_sequential_false_positive_rate_stays_below_alpha_under_peeking() -> None:
    valid, naive = _peeked_rejections(0.0, seed=7)
    # Binomial tolerance on 300 simulations: alpha + 3 standard errors.
    assert valid <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 300)
    # The naive fixed-horizon test peeked 80 times is far above its nominal 5%.
    assert naive > 2 * ALPHA


def test_sequential_detects_a_real_difference() -> None:
    valid, _ = _peeked_rejections(0.1, seed=11, sims=100)
    assert valid > 0.9


def test_sequential_interval_and_p_value_agree() -> None:
    # The interval excludes 0 exactly when p < alpha (both come from the same mSPRT).
    rng = np.random.default_rng(3)
    for _ in range(200):
        est, var, tau2 = rng.normal(0, 1), rng.uniform(0.01, 1), rng.uniform(0.01, 1)
        lo, hi = confidence_sequence(est, var, tau2, ALPHA)
        p = always_valid_p_value(est, var, tau2)
        assert (lo > 0 or hi < 0) == (p < ALPHA)


def test_sequential_interval_covers_with_nonzero_null() -> None:
    lo, hi = confidence_sequence(0.3, 0.01, 0.05, ALPHA)
    assert always_valid_p_value(0.3, 0.01, 0.05, null=lo + 1e-9) == pytest.approx(ALPHA, rel=1e-4)
    assert always_valid_p_value(0.3, 0.01, 0.05, null=hi - 1e-9) == pytest.approx(ALPHA, rel=1e-4)


def test_sequential_mean_interval_covers_truth_and_shrinks() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(2.0, 1.0, size=4000)
    small = mean_interval(MeanSummary.from_values(x[:100]))
    large = mean_interval(MeanSummary.from_values(x))
    assert small.low < 2.0 < small.high and large.low < 2.0 < large.high
    assert large.high - large.low < (small.high - small.low) / 4


def test_sequential_too_few_observations_is_uninformative() -> None:
    d = difference(MeanSummary.from_values([1.0]), MeanSummary.from_values([0.0, 1.0]))
    assert math.isnan(d.low) and math.isnan(d.high) and d.p_value == 1.0


def test_sequential_running_test_never_loosens() -> None:
    t = SequentialTest()
    rng = np.random.default_rng(9)
    lows, highs, ps = [], [], []
    data = rng.normal(0.1, 1.0, size=(2, 3000))
    for n in range(50, 3001, 50):
        r = t.observe(
            difference(MeanSummary.from_values(data[0, :n]), MeanSummary.from_values(data[1, :n]))
        )
        lows.append(r.low)
        highs.append(r.high)
        ps.append(r.p_value)
    assert lows == sorted(lows) and highs == sorted(highs, reverse=True)
    assert ps == sorted(ps, reverse=True)


@pytest.mark.parametrize(
    ("variance", "tau2"),
    [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)],
    ids=["zero-variance", "zero-tau2", "negative-variance"],
)
def test_sequential_rejects_bad_variance(variance: float, tau2: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        mixture_log_likelihood_ratio(0.0, variance, tau2)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 2.0], ids=str)
def test_sequential_rejects_bad_alpha(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        confidence_sequence(0.0, 1.0, 1.0, alpha)
