"""Policies by algorithm name: the names configuration files and the service use.

Examples
--------
>>> sorted(ALGORITHMS)
['epsilon_greedy', 'fixed', 'linucb', 'river', 'thompson', 'uniform']
>>> p = make_policy("linucb", ["a", "b"], dim=4, seed=3, alpha=0.5)
>>> type(p).__name__, p.alpha
('LinUCB', 0.5)
>>> make_policy("linucb", ["a"], dim=4, beta=1.0)
Traceback (most recent call last):
...
ValueError: unknown hyperparameter 'beta' for linucb; valid hyperparameters: alpha, ridge, \
context_ridge, explore, explore_decay, explore_min, group_ridge, fit_group_ridge, \
fit_group_ridge_halfway, max_groups, refresh_every, min_pulls, scaling, scale_clip, \
scale_freeze_after
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from banditroute.learners.base import Policy
from banditroute.learners.linear import LinearThompson, LinUCB
from banditroute.learners.river_policy import RiverRewardPolicy
from banditroute.learners.simple import EpsilonGreedy, Fixed, Uniform

__all__ = ["ALGORITHMS", "make_policy"]

ALGORITHMS: dict[str, type[Policy]] = {
    "linucb": LinUCB,
    "thompson": LinearThompson,
    "epsilon_greedy": EpsilonGreedy,
    "river": RiverRewardPolicy,
    "uniform": Uniform,
    "fixed": Fixed,
}


def make_policy(
    algorithm: str, arms: Iterable[str], dim: int, seed: int = 0, **hyperparameters: Any
) -> Policy:
    """Build the policy named ``algorithm``.

    Parameters
    ----------
    algorithm
        One of :data:`ALGORITHMS`.
    arms
        Initial arm names.
    dim
        Length of the raw feature vectors.
    seed
        Seed of the policy's own generator.
    **hyperparameters
        Keyword hyperparameters of the algorithm's class.

    Raises
    ------
    ValueError
        Unknown algorithm or hyperparameter (the message lists the valid ones), bad value.
    TypeError
        A value of the wrong type.

    Examples
    --------
    >>> p = make_policy("fixed", ["a", "b"], dim=3, model="a")
    >>> p.select([0.0, 0.0, 0.0]).arm
    'a'
    >>> make_policy("bandit9", ["a"], dim=3)
    Traceback (most recent call last):
    ...
    ValueError: unknown algorithm 'bandit9'; valid algorithms: linucb, thompson, \
epsilon_greedy, river, uniform, fixed
    """
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, got {type(algorithm).__name__}")
    cls = ALGORITHMS.get(algorithm)
    if cls is None:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; valid algorithms: {', '.join(ALGORITHMS)}"
        )
    valid = cls.hyperparameter_names()
    for name in hyperparameters:
        if name not in valid:
            raise ValueError(
                f"unknown hyperparameter {name!r} for {algorithm}; "
                f"valid hyperparameters: {', '.join(valid)}"
            )
    return cls(arms, dim, seed, **hyperparameters)
