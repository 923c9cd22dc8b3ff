"""The decision a policy returns and the helpers that turn scores into its probabilities.

:class:`Decision` is what :meth:`banditroute.learners.base.Policy.select` returns;
:func:`epsilon_greedy_probabilities` and :func:`sample_index` are shared by the algorithms that
draw their arm from explicit probabilities. All three are re-exported by
:mod:`banditroute.learners.base`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "epsilon_greedy_probabilities", "sample_index"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One routing decision and the probabilities it was drawn with.

    Parameters
    ----------
    arm
        The chosen arm.
    propensity
        Probability that the policy chooses ``arm`` for this context and candidate set
        (always > 0), equal to ``probabilities[arm]``.
    scores
        The policy's score per candidate (higher is better; e.g. the upper confidence bound for
        LinUCB, the posterior mean reward for Thompson sampling).
    probabilities
        Selection probability per candidate; sums to 1.
    ranking
        All candidates best first, ``arm`` first (a fallback order).

    Examples
    --------
    >>> d = Decision("a", 0.9, {"a": 1.0, "b": 0.5}, {"a": 0.9, "b": 0.1}, ["a", "b"])
    >>> d.arm, d.propensity, d.ranking[1]
    ('a', 0.9, 'b')
    """

    arm: str
    propensity: float
    scores: dict[str, float]
    probabilities: dict[str, float]
    ranking: list[str]


def epsilon_greedy_probabilities(k: int, best: int, epsilon: float) -> np.ndarray:
    """Probabilities of epsilon-greedy over ``k`` candidates with greedy choice ``best``.

    Examples
    --------
    >>> epsilon_greedy_probabilities(4, 1, 0.2).tolist()
    [0.05, 0.85, 0.05, 0.05]
    """
    probs = np.full(k, epsilon / k)
    probs[best] = 1.0 - (k - 1) * (epsilon / k)
    return probs


def sample_index(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Draw an index with probabilities ``probs`` using one uniform number from ``rng``.

    An index whose probability is 0 is never drawn.

    Examples
    --------
    >>> sample_index(np.array([0.0, 1.0, 0.0]), np.random.default_rng(0))
    1
    """
    cumulative = np.cumsum(probs)
    u = rng.random() * float(cumulative[-1])
    pos = int(np.searchsorted(cumulative, u, side="right"))
    if pos >= len(probs) or probs[pos] <= 0.0:
        pos = int(np.flatnonzero(probs > 0.0)[-1])
    return pos
