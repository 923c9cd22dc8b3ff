"""Routing-benchmark metrics: RouterBench's AIQ and RouteLLM's APGR and CPT.

All functions are pure and take plain sequences of numbers.

* :func:`convex_hull` and :func:`aiq` follow RouterBench (Hu et al., 2024;
  ``withmartian/routerbench``, ``evaluation/AIQ.py``): the *non-decreasing convex hull*
  of a router's (cost, quality) points is the upper concave envelope of the points,
  cut at its highest point (a router can always mix two configurations, and never needs
  to pay more for less). AIQ is the area under that hull, extended flat from its last
  point to ``max_cost``, divided by ``max_cost`` (so the integral runs over the points'
  own cost range, from the cheapest point, not from 0, and is normalised by the largest
  cost of all routers being compared, exactly as RouterBench's ``calc_AIQ`` does).
* :func:`apgr` and :func:`cpt` follow RouteLLM (Ong et al., 2024; ``lm-sys/RouteLLM``,
  ``routellm/evals/evaluate.py``) for a strong/weak model pair, with the cost axis being
  the fraction of calls sent to the strong model. APGR is the trapezoidal area under
  (strong fraction, quality) minus the weak model's area, over the strong model's area
  minus the weak model's, both over the same range of strong fractions. CPT(x) is the
  strong-call fraction at which quality first reaches ``weak + x (strong - weak)``,
  interpolating linearly between points; RouteLLM calls ``np.interp`` on the points
  sorted by strong fraction, which agrees whenever quality is non-decreasing in it.
* :func:`oracle_choices` picks, per prompt, the model with the best reward
  ``quality - cost_weight * cost``, breaking ties by lower cost (so with
  ``cost_weight=0`` it is RouterBench's "cheapest correct model").

References
----------
Hu et al., "RouterBench: A Benchmark for Multi-LLM Routing System", 2024.
Ong et al., "RouteLLM: Learning to Route LLMs with Preference Data", 2024.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["aiq", "apgr", "convex_hull", "cpt", "oracle_choices", "oracle_point"]


def _points(costs: Sequence[float] | np.ndarray, qualities: Sequence[float] | np.ndarray,
            ) -> tuple[np.ndarray, np.ndarray]:
    x, y = (np.asarray(v, dtype=np.float64).ravel() for v in (costs, qualities))
    if x.shape != y.shape:
        raise ValueError("qualities: must have as many entries as costs")
    if x.size == 0:
        raise ValueError("costs: need at least one point")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("costs: points must be finite")
    return x, y


def convex_hull(costs: Sequence[float] | np.ndarray,
                qualities: Sequence[float] | np.ndarray) -> np.ndarray:
    """Non-decreasing convex hull of (cost, quality) points, sorted by cost.

    Returns an ``(m, 2)`` array of hull vertices: the upper concave envelope of the
    points, up to its highest quality (among equal costs only the best quality counts).

    Examples
    --------
    >>> convex_hull([0, 1, 2, 3], [0.0, 0.2, 0.9, 0.5]).tolist()
    [[0.0, 0.0], [2.0, 0.9]]
    >>> convex_hull([1, 2, 3], [0.5, 0.8, 0.9]).tolist()
    [[1.0, 0.5], [2.0, 0.8], [3.0, 0.9]]
    """
    x, y = _points(costs, qualities)
    order = np.lexsort((-y, x))
    hull: list[tuple[float, float]] = []
    for xi, yi in zip(x[order], y[order], strict=True):
        if hull and hull[-1][0] == xi:
            continue  # same cost, lower quality
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # drop the middle point if it lies on or below the chord to the new point
            if (y2 - y1) * (xi - x1) <= (yi - y1) * (x2 - x1):
                hull.pop()
            else:
                break
        hull.append((float(xi), float(yi)))
    top = int(np.argmax([p[1] for p in hull]))
    return np.asarray(hull[: top + 1], dtype=np.float64)


def aiq(costs: Sequence[float] | np.ndarray, qualities: Sequence[float] | np.ndarray,
        max_cost: float | None = None) -> float:
    """RouterBench's Average Improvement in Quality of one router's (cost, quality) points.

    Parameters
    ----------
    costs, qualities
        The router's operating points (e.g. one per cost weight), cost per query and
        mean quality.
    max_cost
        Upper end of the cost range; pass the largest cost over all routers being
        compared (RouterBench's ``max_x_value``). Default: the largest of ``costs``.

    Examples
    --------
    Hull (0, 0) - (2, 0.9), extended flat to 4: area 0.9 + 1.8 = 2.7, over 4:

    >>> aiq([0, 1, 2, 3], [0.0, 0.2, 0.9, 0.5], max_cost=4.0)
    0.675
    >>> aiq([1.0], [0.8], max_cost=2.0)
    0.4
    """
    hull = convex_hull(costs, qualities)
    x_max = float(hull[-1, 0]) if max_cost is None else float(max_cost)
    if x_max < float(np.max(np.asarray(costs, dtype=np.float64))):
        raise ValueError("max_cost: must be at least the largest cost")
    if x_max <= 0.0:
        return float(hull[-1, 1])
    xs = np.append(hull[:, 0], x_max)
    ys = np.append(hull[:, 1], hull[-1, 1])
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))
    return area / x_max


def _sorted_curve(strong_fractions: Sequence[float] | np.ndarray,
                  qualities: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _points(strong_fractions, qualities)
    if np.any(x < 0.0) or np.any(x > 1.0):
        raise ValueError("strong_fractions: must lie in [0, 1]")
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def apgr(strong_fractions: Sequence[float] | np.ndarray,
         qualities: Sequence[float] | np.ndarray,
         weak_quality: float, strong_quality: float) -> float:
    """RouteLLM's Average Performance Gap Recovered over a sweep of operating points.

    ``(AUC - weak_AUC) / (strong_AUC - weak_AUC)`` with trapezoidal areas over the strong
    fractions covered by the points (RouteLLM uses percentages; the ratio is the same).

    Examples
    --------
    Points (0, 0.5), (0.5, 0.9), (1, 1.0) with weak 0.5 and strong 1.0: AUC 0.825,
    weak 0.5, strong 1.0, so APGR = 0.325 / 0.5:

    >>> round(apgr([0, 0.5, 1], [0.5, 0.9, 1.0], 0.5, 1.0), 6)
    0.65
    >>> round(apgr([0, 1], [0.5, 1.0], 0.5, 1.0), 6)   # a random router
    0.5
    """
    if strong_quality == weak_quality:
        raise ValueError("strong_quality: must differ from weak_quality")
    x, y = _sorted_curve(strong_fractions, qualities)
    span = float(x[-1] - x[0])
    if span <= 0.0:
        raise ValueError("strong_fractions: need at least two distinct values")
    auc = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    weak_auc, strong_auc = weak_quality * span, strong_quality * span
    return (auc - weak_auc) / (strong_auc - weak_auc)


def cpt(strong_fractions: Sequence[float] | np.ndarray,
        qualities: Sequence[float] | np.ndarray,
        weak_quality: float, strong_quality: float, gap: float = 0.5) -> float:
    """RouteLLM's Call-Performance Threshold: strong-call fraction reaching ``gap`` of the gap.

    The smallest strong fraction (linear interpolation between consecutive points,
    sorted by strong fraction) at which quality reaches
    ``weak_quality + gap * (strong_quality - weak_quality)``; ``nan`` if no point does.
    CPT(50%) of a random router is 0.5.

    Examples
    --------
    >>> cpt([0, 0.5, 1], [0.5, 0.9, 1.0], 0.5, 1.0, gap=0.5)   # target 0.75
    0.3125
    >>> cpt([0, 1], [0.5, 1.0], 0.5, 1.0, gap=0.8)
    0.8
    """
    if not 0.0 <= gap <= 1.0:
        raise ValueError("gap: must lie in [0, 1]")
    x, y = _sorted_curve(strong_fractions, qualities)
    target = weak_quality + gap * (strong_quality - weak_quality)
    if y[0] >= target:
        return float(x[0])
    for i in range(1, x.size):
        if y[i] >= target:
            x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
    return float("nan")


def oracle_choices(quality: np.ndarray, cost: np.ndarray, cost_weight: float = 0.0) -> np.ndarray:
    """Per-prompt index of the model with the best ``quality - cost_weight * cost``.

    Ties go to the cheaper model (then the lower index).

    Examples
    --------
    >>> q = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    >>> c = np.array([[3.0, 1.0, 2.0], [1.0, 5.0, 2.0], [3.0, 2.0, 1.0]])
    >>> oracle_choices(q, c).tolist()
    [1, 2, 2]
    """
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if q.ndim != 2 or q.shape != c.shape:
        raise ValueError("cost: must have the same (n, K) shape as quality")
    reward = q - float(cost_weight) * c
    best = reward.max(axis=1, keepdims=True)
    # among (near-)best models pick the cheapest
    masked = np.where(reward >= best - 1e-12, c, np.inf)
    return np.asarray(np.argmin(masked, axis=1), dtype=np.int64)


def oracle_point(quality: np.ndarray, cost: np.ndarray,
                 cost_weight: float = 0.0) -> tuple[float, float]:
    """Mean quality and mean cost per query of :func:`oracle_choices`.

    Examples
    --------
    >>> q = np.array([[1.0, 1.0], [0.0, 1.0]]); c = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> oracle_point(q, c)
    (1.0, 2.0)
    """
    choice = oracle_choices(quality, cost, cost_weight)
    rows = np.arange(choice.size)
    q = np.asarray(quality, dtype=np.float64)[rows, choice]
    c = np.asarray(cost, dtype=np.float64)[rows, choice]
    return float(q.mean()), float(c.mean())
