"""Per-prompt cost estimates for budget-paced replay: what a call to each model will cost.

A live route prices each candidate per request (input tokens times the price, plus the output
tokens a :class:`~banditroute.learners.cost.CostModel` predicts from the prompt's features).
Replay datasets record dollars, not tokens, so :class:`CostEstimates` learns the same thing
directly: one ridge regression per model of a call's cost on the prompt features (the
learners' :class:`~banditroute.learners._ridge.RidgeArms`), fitted on the labelled history (the
train split) and updated online with each realised cost of the model that was called. Its
prior is the model's mean cost (a price list), so with no history it starts where a flat
per-model price would.

Why per prompt: a model's cost per call varies with the prompt (RouterBench: coefficient of
variation 0.2-0.5; GPT-4's cost falls with prompt length because short coding prompts get
long answers). A fixed-lambda policy learns that through its reward; a pacer that priced
every call at the model's mean could not, and paid for it in accuracy at the same spend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from banditroute.learners._ridge import RidgeArms

__all__ = ["CostEstimates"]


class CostEstimates:
    """Online ridge regression of each model's cost per call on the prompt features.

    Parameters
    ----------
    prior
        Each model's prior cost per call (USD), e.g. its mean cost on a price list.
    dim
        Length of the feature vectors.
    ridge
        Prior precision of the coefficients (> 0); the intercept is shrunk to ``prior``, the
        feature coefficients to 0 (the regression learns the cost minus ``prior``).

    Examples
    --------
    >>> est = CostEstimates({"a": 0.01, "b": 0.002}, dim=1)
    >>> est.predict(np.array([1.0]))
    {'a': 0.01, 'b': 0.002}
    >>> for _ in range(200):
    ...     est.update("a", np.array([1.0]), 0.03)
    ...     est.update("a", np.array([-1.0]), 0.01)
    >>> {k: round(v, 3) for k, v in est.predict(np.array([1.0])).items()}
    {'a': 0.03, 'b': 0.002}
    """

    def __init__(self, prior: Mapping[str, float], dim: int, ridge: float = 1.0) -> None:
        if ridge <= 0 or not np.isfinite(ridge):
            raise ValueError("ridge: must be finite and > 0")
        self.models = list(prior)
        self._index = {m: j for j, m in enumerate(self.models)}
        self._prior = np.array([float(prior[m]) for m in self.models])
        self._floor = 0.05 * self._prior
        self._arms = RidgeArms(dim + 1, ridge)  # the intercept is the last coordinate
        for _ in self.models:
            self._arms.grow(pooled_intercept=False)

    def fit(self, features: np.ndarray, cost: np.ndarray, models: Sequence[str]) -> None:
        """Add a fully labelled history: ``cost[i, j]`` is model ``models[j]``'s cost on row i."""
        z = np.c_[features, np.ones(len(features))]
        for j, model in enumerate(models):
            m = self._index[model]
            self._arms.learn_many(m, z, cost[:, j] - self._prior[m])

    def update(self, model: str, x: np.ndarray, cost: float) -> None:
        """One realised cost of ``model`` on a prompt with features ``x``."""
        m = self._index[model]
        self._arms.learn(m, np.r_[x, 1.0], cost - self._prior[m])

    def predict(self, x: np.ndarray) -> dict[str, float]:
        """Every model's estimated cost (USD) on a prompt with features ``x``; never below 5 %
        of its prior, so a regression cannot make a model look free."""
        est = np.maximum(self._arms.theta.dot(np.r_[x, 1.0]) + self._prior, self._floor)
        return {m: float(est[j]) for j, m in enumerate(self.models)}
