"""How far a routing pass lies above (or below) the single-model convex hull.

The *hull gap* of a pass is the mean quality of the models it chose minus the quality of
the single-model non-decreasing convex hull (RouterBench's zero router,
:func:`banditroute.learners.metrics.convex_hull` of every model's mean cost and mean
quality) at the pass's own mean cost. Both the hull and the pass's point are computed on
the same prompts, so the gap compares the router with what any random mixture of single
models achieves on exactly the traffic it saw. Positive: the router beats every mixture of
single models at that cost; negative: a mixture would have been better.

The hull is evaluated by linear interpolation between its vertices; below the cheapest
vertex it is that vertex's quality, above the last (best) vertex it is the last quality.

The *late* hull gap uses only the second half of the pass by stream position (positions
``n // 2`` to ``n - 1``), i.e. where learning ended up rather than where it started.

:func:`hull_gap_interval` says how sure a gap is: seeded passes share their prompts, so
their spread alone does not show how much a gap owes to which prompts the traffic held. It
resamples both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from banditroute.learners.metrics import convex_hull
from banditroute.service.replay.dataset import ReplayDataset

__all__ = ["hull_gap", "hull_gap_interval", "hull_quality", "late_hull_gap"]


def hull_quality(hull: np.ndarray, cost: float) -> float:
    """Quality of a non-decreasing hull (``(m, 2)`` vertices, as from ``convex_hull``) at ``cost``.

    Examples
    --------
    >>> hull = np.array([[1.0, 0.5], [3.0, 0.9]])
    >>> [hull_quality(hull, c) for c in (0.0, 2.0, 5.0)]
    [0.5, 0.7, 0.9]
    """
    return float(np.interp(float(cost), hull[:, 0], hull[:, 1]))


def _gap(quality: np.ndarray, cost: np.ndarray, choices: np.ndarray) -> float:
    """Hull gap of ``choices`` (one column per row) on the ``(n, K)`` quality/cost rows."""
    rows = np.arange(choices.size)
    hull = convex_hull(cost.mean(axis=0), quality.mean(axis=0))
    got_quality = float(quality[rows, choices].mean())
    got_cost = float(cost[rows, choices].mean())
    return got_quality - hull_quality(hull, got_cost)


def _checked(dataset: ReplayDataset, order: Sequence[int] | np.ndarray,
             choices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o = np.asarray(order, dtype=np.int64).ravel()
    c = np.asarray(choices, dtype=np.int64).ravel()
    if o.size != c.size:
        raise ValueError("choices: need one choice per stream position in order")
    if o.size == 0:
        raise ValueError("order: need at least one prompt")
    if o.min() < 0 or o.max() >= dataset.n:
        raise ValueError("order: row index out of range")
    if c.min() < 0 or c.max() >= dataset.k:
        raise ValueError("choices: model index out of range")
    return o, c


def _rows(dataset: ReplayDataset, order: Sequence[int] | np.ndarray,
          choices: Sequence[int] | np.ndarray,
          late: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pass's quality and cost rows and its choices, from stream position ``n // 2`` on
    when ``late``: what :func:`_gap` takes."""
    o, c = _checked(dataset, order, choices)
    start = o.size // 2 if late else 0
    return dataset.quality[o[start:]], dataset.cost[o[start:]], c[start:]


def hull_gap(dataset: ReplayDataset, order: Sequence[int] | np.ndarray,
             choices: Sequence[int] | np.ndarray) -> float:
    """Hull gap of a whole pass: ``choices[t]`` is the model column chosen for row ``order[t]``.

    ``order`` and ``choices`` are a :class:`~banditroute.service.replay.runner.RunResult`'s
    fields of the same names. See the module doc for the definition.

    Examples
    --------
    Two models: "cheap" (cost 0) answers prompts 0 and 2, "dear" (cost 1) answers all.
    The hull runs from (0, 0.5) to (1, 1). Always "dear" lies on it; picking "cheap"
    exactly where it is right gets quality 1 at cost 0.5, where the hull has 0.75:

    >>> ds = ReplayDataset("toy", ["a", "b", "c", "d"], ["cheap", "dear"],
    ...                    np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]]),
    ...                    np.array([[0.0, 1.0]] * 4))
    >>> hull_gap(ds, [0, 1, 2, 3], [1, 1, 1, 1])
    0.0
    >>> hull_gap(ds, [0, 1, 2, 3], [0, 1, 0, 1])
    0.25
    """
    return _gap(*_rows(dataset, order, choices, late=False))


def late_hull_gap(dataset: ReplayDataset, order: Sequence[int] | np.ndarray,
                  choices: Sequence[int] | np.ndarray) -> float:
    """:func:`hull_gap` over the second half of the pass (stream positions ``n // 2`` on).

    The hull is that of the single models' mean cost and quality on those late prompts.

    Examples
    --------
    Same toy as :func:`hull_gap`, streamed as rows 1, 0, 3, 2: the late half is rows 3
    and 2 (cheap right on row 2 only), so the late hull runs from (0, 0.5) to (1, 1).

    >>> ds = ReplayDataset("toy", ["a", "b", "c", "d"], ["cheap", "dear"],
    ...                    np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]]),
    ...                    np.array([[0.0, 1.0]] * 4))
    >>> late_hull_gap(ds, [1, 0, 3, 2], [0, 0, 1, 0])   # right late: 1.0 at 0.5
    0.25
    >>> late_hull_gap(ds, [1, 0, 3, 2], [1, 1, 0, 1])   # wrong late: 0.5 at 0.5
    -0.25
    """
    return _gap(*_rows(dataset, order, choices, late=True))


def hull_gap_interval(dataset: ReplayDataset,
                      passes: Sequence[tuple[Sequence[int] | np.ndarray,
                                             Sequence[int] | np.ndarray]],
                      *, late: bool = False, level: float = 0.95, draws: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean (late) hull gap over seeded ``passes`` of ``(order,
    choices)``: each draw resamples the passes and, within each drawn pass, its stream
    positions (the late half's with ``late``), and recomputes the gap, single-model hull
    included, on the drawn rows. An interval above 0 says the router beats every mixture of
    single models beyond what the traffic's prompts and the seeds move.

    Examples
    --------
    The toy of :func:`hull_gap`, 40 prompts: picking "cheap" exactly where it is right is
    0.25 above the hull on every draw's prompts; "dear" alone lies on it.

    >>> ds = ReplayDataset("toy", ["p"] * 40, ["cheap", "dear"],
    ...                    np.array([[1.0, 1.0], [0.0, 1.0]] * 20), np.array([[0.0, 1.0]] * 40))
    >>> order = np.arange(40)
    >>> lo, hi = hull_gap_interval(ds, [(order, np.array([0, 1] * 20))])
    >>> 0.0 < lo <= 0.25 <= hi
    True
    >>> hull_gap_interval(ds, [(order, np.ones(40, dtype=int))])
    (0.0, 0.0)
    """
    if not passes:
        raise ValueError("passes: need at least one (order, choices) pass")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must lie in (0, 1), got {level}")
    rows = [_rows(dataset, order, choices, late) for order, choices in passes]
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(draws):
        total = 0.0
        for p in rng.integers(len(rows), size=len(rows)):
            quality, cost, chosen = rows[p]
            pick = rng.integers(chosen.size, size=chosen.size)
            total += _gap(quality[pick], cost[pick], chosen[pick])
        gaps.append(total / len(rows))
    lo, hi = np.percentile(gaps, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
