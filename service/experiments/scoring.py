"""The reward rule of :mod:`banditroute.learners.reward` as SQL expressions, for aggregates.

Statistics over every decision of an experiment (its status, the dashboard's series) are sums
the database computes, so the rule that :func:`banditroute.learners.reward.compute_reward`
applies to one event is also written here, once, as SQLAlchemy expressions:

- :func:`outcome_quality`: an outcome's quality (``quality``, else ``success`` as 1/0, 0 on
  error; NULL without an outcome);
- :func:`reward`: that quality merged with the mean rating (``feedback_weight``), minus weighted
  cost and latency, clipped to ``[reward_min, reward_max]``, in the order of the Python rule.

``tests/test_experiments_reward_sql.py`` runs them on the database over random cases and
checks that they equal ``compute_reward`` (through ``policies.reward_of``, what the follower
learns from).

Examples
--------
>>> from sqlalchemy import column
>>> from banditroute.learners.reward import RewardWeights
>>> expr = reward(column("q"), column("r"), column("c"), column("l"), RewardWeights())
>>> "greatest" in str(expr) and "least" in str(expr)
True
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, case, cast, func
from sqlalchemy.sql.elements import ColumnElement

from banditroute.learners.reward import RewardWeights

__all__ = ["outcome_quality", "reward"]


def outcome_quality(outcome: Any) -> ColumnElement[Any]:
    """Quality of the joined outcome row (``outcome``: the ``outcomes`` columns, ``.c``):
    NULL without an outcome, 0 on error, else ``quality``, else ``success`` as 1/0."""
    return case(
        (outcome.event_id.is_(None), None),
        (outcome.error != "", 0.0),
        (outcome.quality.is_not(None), outcome.quality),
        (outcome.success.is_not(None), cast(cast(outcome.success, Integer), Float)),
        else_=None,
    )


def reward(
    quality: ColumnElement[Any],
    rating: ColumnElement[Any],
    cost_usd: ColumnElement[Any],
    latency_ms: ColumnElement[Any],
    weights: RewardWeights,
) -> ColumnElement[Any]:
    """The clipped reward from a quality (:func:`outcome_quality`), the mean rating, cost and
    latency (NULL quality and rating count as 0, NULL cost and latency as 0)."""
    fw = weights.feedback_weight
    merged = case(
        (rating.is_(None), quality),
        (quality.is_(None), rating),
        else_=(1.0 - fw) * quality + fw * rating,
    )
    raw = (
        func.coalesce(merged, 0.0)
        - weights.cost_weight * func.coalesce(cost_usd, 0.0)
        - weights.latency_weight * (func.coalesce(latency_ms, 0.0) / 1000.0)
    )
    return func.greatest(weights.reward_min, func.least(weights.reward_max, raw))
