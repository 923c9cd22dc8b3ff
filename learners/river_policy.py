"""A reward-model policy with one online River regressor per arm (non-linear routing)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from river import linear_model, optim, tree

from banditroute.learners._river_codec import decode, encode
from banditroute.learners._validation import check_choice, check_float, check_int
from banditroute.learners.base import Decision, Policy, epsilon_greedy_probabilities, sample_index

__all__ = ["REGRESSORS", "RiverRewardPolicy"]

#: Regressors offered (each one round-trips exactly through :mod:`banditroute.learners.state`).
REGRESSORS = ("linear", "hoeffding_tree")


class RiverRewardPolicy(Policy):
    """Per-arm online River regressors predicting the reward, with softmax or epsilon exploration.

    Each arm's regressor learns ``reward`` from the scaled features (as a ``{index: value}``
    dict; see :class:`~banditroute.learners.base.Policy` for the scaling) one event at a time.

    * ``regressor="linear"``: ``linear_model.LinearRegression`` with SGD at ``learning_rate``
      and ``l2`` regularisation.
    * ``regressor="hoeffding_tree"``: ``tree.HoeffdingTreeRegressor`` (``grace_period``,
      quantisation splitter with radius 0.5 on the standardised features, linear models in the
      leaves). Its state is large: each leaf keeps split statistics per feature (about 40 KB
      per leaf and 10 features in a snapshot, so ~250 KB per leaf at ``dim=64``); snapshot such
      policies less often or use a smaller ``dim``.

    Exploration: ``"softmax"`` draws an arm with probability proportional to
    ``exp(score / temperature)`` mixed with ``explore`` uniform; ``"epsilon"`` is epsilon-greedy
    with ``epsilon``. Propensities are exact. An arm without updates (a new arm) scores as the
    best trained candidate plus ``optimism`` so it is tried early. ``correct`` cannot undo a
    River update: it learns the event again with the new reward (a documented approximation).

    Parameters
    ----------
    arms, dim, seed
        See :class:`~banditroute.learners.base.Policy`.
    regressor
        One of :data:`REGRESSORS`.
    exploration
        ``"softmax"`` or ``"epsilon"``.
    temperature
        Softmax temperature (> 0).
    epsilon
        Exploration probability for ``"epsilon"``, in ``[0, 1]``.
    explore
        Uniform mixing for ``"softmax"``, in ``[0, 1]`` (propensity floor ``explore / k``).
    learning_rate
        SGD learning rate of the linear regressors (> 0).
    l2
        L2 regularisation of the linear regressors (>= 0).
    grace_period
        Observations between split attempts of the Hoeffding trees (>= 1).
    optimism
        Score bonus of untrained arms over the best trained candidate (>= 0).
    **scaling
        ``scaling``, ``scale_clip``, ``scale_freeze_after`` (see :class:`Policy`).

    Examples
    --------
    >>> p = RiverRewardPolicy(["a", "b"], dim=2, seed=0, exploration="epsilon", epsilon=0.1)
    >>> for i in range(50):
    ...     x = [float(i % 2), 1.0]
    ...     _ = p.update(x, "a", x[0]).update(x, "b", 1.0 - x[0])
    >>> d = p.select([1.0, 1.0])
    >>> d.ranking[0] == d.arm, round(sum(d.probabilities.values()), 9)
    (True, 1.0)
    """

    algorithm = "river"

    def __init__(
        self,
        arms: Iterable[str],
        dim: int,
        seed: int = 0,
        *,
        regressor: str = "linear",
        exploration: str = "softmax",
        temperature: float = 0.1,
        epsilon: float = 0.1,
        explore: float = 0.01,
        learning_rate: float = 0.01,
        l2: float = 0.0,
        grace_period: int = 200,
        optimism: float = 0.05,
        **scaling: Any,
    ) -> None:
        self.regressor = check_choice("regressor", regressor, REGRESSORS)
        self.exploration = check_choice("exploration", exploration, ("softmax", "epsilon"))
        self.temperature = check_float("temperature", temperature, low=0.0, low_open=True)
        self.epsilon = check_float("epsilon", epsilon, low=0.0, high=1.0)
        self.explore = check_float("explore", explore, low=0.0, high=1.0)
        self.learning_rate = check_float("learning_rate", learning_rate, low=0.0, low_open=True)
        self.l2 = check_float("l2", l2, low=0.0)
        self.grace_period = check_int("grace_period", grace_period, low=1)
        self.optimism = check_float("optimism", optimism, low=0.0)
        super().__init__(arms, dim, seed, **scaling)

    def _new_regressor(self) -> Any:
        if self.regressor == "linear":
            return linear_model.LinearRegression(
                optimizer=optim.SGD(self.learning_rate),
                intercept_lr=self.learning_rate,
                l2=self.l2,
            )
        return tree.HoeffdingTreeRegressor(
            grace_period=self.grace_period,
            splitter=tree.splitter.QOSplitter(radius=0.5),
            leaf_prediction="adaptive",
        )

    def _init_state(self) -> None:
        self._models: list[Any] = []

    def _grow(self) -> None:
        self._models.append(self._new_regressor())

    def _as_dict(self, x: np.ndarray) -> dict[int, float]:
        return dict(enumerate(self._features(x)[: self._dim].tolist()))

    def _learn(self, x: np.ndarray, i: int, reward: float) -> None:
        self._models[i].learn_one(self._as_dict(x), reward)

    def _relearn(self, x: np.ndarray, i: int, old: float, new: float) -> None:
        self._models[i].learn_one(self._as_dict(x), new)

    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        features = self._as_dict(x)
        trained = self._counts[idx] > 0
        scores = np.zeros(len(idx))
        for j, i in enumerate(idx.tolist()):
            if trained[j]:
                scores[j] = float(self._models[i].predict_one(features))
        if not trained.all():
            top = float(scores[trained].max()) if trained.any() else 0.0
            scores[~trained] = top + self.optimism
        k = len(idx)
        if self.exploration == "epsilon":
            best = int(np.argmax(scores))
            probs = epsilon_greedy_probabilities(k, best, self.epsilon)
        else:
            logits = (scores - scores.max()) / self.temperature
            soft = np.exp(logits)
            soft /= soft.sum()
            probs = (1.0 - self.explore) * soft + self.explore / k
        pos = sample_index(probs, rng) if k > 1 else 0
        return self._decision(idx, scores, probs, pos)

    def _get_state(self) -> dict[str, Any]:
        return {**super()._get_state(), "river_models": encode(self._models)}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        models = decode(state["river_models"])
        if not isinstance(models, list) or len(models) != len(self._arm_names):
            raise ValueError("state holds the wrong number of River models")
        self._models = models
