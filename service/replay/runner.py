"""In-process replay: stream a dataset's prompts through a policy as an online bandit.

For one seed, the prompts are shuffled with ``numpy.random.default_rng(seed)``; for each
prompt the policy chooses a model from its features and is told only that model's
reward ``clip(quality - cost_weight * cost_usd, -1, 1)`` (the same formula and clipping
as :func:`banditroute.learners.reward.compute_reward` with default weights). The run records what it
chose, the quality and cost it got, and the regret against the per-prompt best reward.

Warm start (reported separately from cold start) first fits the policy on a labelled
history, by default the dataset's train split:

* ``"full"`` (default): every ``(prompt, model, reward)`` of the history is fed to
  ``policy.update``, as a user with fully labelled logs would; prompts in a seeded
  random order, all models of a prompt in a row.
* ``"replay"``: the history is itself replayed as an online bandit (the policy sees only
  the reward of the models it chose).

A run is deterministic given its seed: the policy is built with ``seed`` and all
exploration draws come from a generator seeded with ``(seed, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from banditroute.learners.features import context_group
from banditroute.learners.pacing import BudgetPacer
from banditroute.service.core.policies import PolicySpec
from banditroute.service.replay.cost_estimates import CostEstimates
from banditroute.service.replay.dataset import ReplayDataset

__all__ = [
    "BudgetRun",
    "Featurizer",
    "PolicySpec",
    "RunResult",
    "default_featurizer",
    "estimated_costs",
    "reward_matrix",
    "run_budgeted",
    "run_online",
    "warm_start",
]

Featurizer = Callable[[Sequence[str]], np.ndarray]
REWARD_MIN, REWARD_MAX = -1.0, 1.0


def default_featurizer(dim: int = 64) -> Featurizer:
    """The learners' :class:`~banditroute.learners.features.FeatureExtractor`, applied row by
    row."""
    from banditroute.learners.features import FeatureExtractor

    extractor = FeatureExtractor(dim=dim)

    def featurize(prompts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(prompts), extractor.dim), dtype=np.float64)
        for i, prompt in enumerate(prompts):
            out[i] = extractor.extract(prompt)
        return out

    return featurize


def reward_matrix(dataset: ReplayDataset, cost_weight: float) -> np.ndarray:
    """``clip(quality - cost_weight * cost, -1, 1)`` for every (prompt, model)."""
    if not np.isfinite(cost_weight) or cost_weight < 0:
        raise ValueError("cost_weight: must be finite and >= 0")
    raw = dataset.quality - float(cost_weight) * dataset.cost
    return np.asarray(np.clip(raw, REWARD_MIN, REWARD_MAX), dtype=np.float64)


@dataclass
class RunResult:
    """One online pass of one policy over one stream."""

    order: np.ndarray
    choices: np.ndarray
    propensities: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    reward: np.ndarray
    regret: np.ndarray

    @property
    def accuracy(self) -> float:
        """Mean quality of the chosen models."""
        return float(self.quality.mean())

    @property
    def cost_per_query(self) -> float:
        """Mean cost of the chosen models, USD."""
        return float(self.cost.mean())

    @property
    def mean_reward(self) -> float:
        """Mean reward per decision."""
        return float(self.reward.mean())

    def cumulative_regret(self) -> np.ndarray:
        """Cumulative regret after each round."""
        return np.cumsum(self.regret)

    def shares(self, k: int) -> np.ndarray:
        """Fraction of decisions that went to each of ``k`` models."""
        return np.bincount(self.choices, minlength=k) / max(self.choices.size, 1)


def _groups(dataset: ReplayDataset, task_context: bool) -> list[str | None]:
    """Each prompt's policy group (its task label as categorical context) or all None."""
    if not task_context:
        return [None] * dataset.n
    return [context_group(c) for c in dataset.categorical_contexts()]


def warm_start(policy: Any, history: ReplayDataset, features: np.ndarray, cost_weight: float,
               seed: int, mode: str = "full", task_context: bool = True) -> Any:
    """Fit ``policy`` on a labelled ``history`` before the online pass (see module doc).

    ``task_context``: pass each prompt's task label to the policy as its group."""
    rewards = reward_matrix(history, cost_weight)
    order = np.random.default_rng([seed, 2]).permutation(history.n)
    groups = _groups(history, task_context)
    if mode == "full":
        for i in order:
            x, group = features[i], groups[i]
            for j, model in enumerate(history.models):
                policy.update(x, model, float(rewards[i, j]), group=group)
        return policy
    if mode == "replay":
        rng = np.random.default_rng([seed, 3])
        for i in order:
            decision = policy.select(features[i], rng=rng, group=groups[i])
            policy.update(features[i], decision.arm, float(rewards[i, history.models.index(
                decision.arm)]), group=groups[i])
        return policy
    raise ValueError(f"warm_start: mode must be 'full' or 'replay', got {mode!r}")


def run_online(policy: Any, dataset: ReplayDataset, features: np.ndarray, cost_weight: float,
               seed: int, task_context: bool = True) -> RunResult:
    """Stream ``dataset`` in a seeded random order through ``policy``; bandit feedback only.

    ``task_context``: pass each prompt's task label to the policy as its group.

    Examples
    --------
    >>> from banditroute.learners.registry import make_policy
    >>> ds = ReplayDataset("toy", ["p"] * 4, ["cheap", "dear"], np.array([[0.0, 1.0]] * 4),
    ...                    np.array([[0.0, 0.1]] * 4))
    >>> pol = make_policy("fixed", ds.models, dim=1, model="dear")
    >>> res = run_online(pol, ds, np.zeros((4, 1)), cost_weight=1.0, seed=0)
    >>> res.accuracy, round(res.cost_per_query, 3), float(res.regret.sum())
    (1.0, 0.1, 0.0)
    """
    if features.shape[0] != dataset.n:
        raise ValueError("features: need one row per prompt")
    rewards = reward_matrix(dataset, cost_weight)
    best = rewards.max(axis=1)
    order = np.random.default_rng(seed).permutation(dataset.n)
    rng = np.random.default_rng([seed, 1])
    index = {model: j for j, model in enumerate(dataset.models)}
    groups = _groups(dataset, task_context)
    n = dataset.n
    choices = np.empty(n, dtype=np.int64)
    props = np.empty(n)
    for t, i in enumerate(order):
        x, group = features[i], groups[i]
        decision = policy.select(x, rng=rng, group=group)
        j = index[decision.arm]
        choices[t] = j
        props[t] = decision.propensity
        policy.update(x, decision.arm, float(rewards[i, j]), group=group)
    got = rewards[order, choices]
    return RunResult(
        order=order,
        choices=choices,
        propensities=props,
        quality=dataset.quality[order, choices],
        cost=dataset.cost[order, choices],
        reward=got,
        regret=best[order] - got,
    )


@dataclass
class BudgetRun(RunResult):
    """A budget-paced pass: also the cost weight (USD^-1) each decision used and whether
    pacing changed its choice."""

    cost_weights: np.ndarray | None = None
    paced: np.ndarray | None = None

    def spend_windows(self, windows: int) -> list[float]:
        """Mean cost per query in ``windows`` consecutive slices of the pass."""
        return [float(part.mean()) for part in np.array_split(self.cost, windows) if part.size]


def estimated_costs(history: ReplayDataset | None, dataset: ReplayDataset) -> dict[str, float]:
    """Each model's cost estimate at decision time: its mean cost on ``history`` (the train
    split, a price list a user has) or, without one, on ``dataset`` itself."""
    source = history if history is not None else dataset
    means = source.mean_cost()
    return {model: float(means[j]) for j, model in enumerate(source.models)}


def run_budgeted(policy: Any, dataset: ReplayDataset, features: np.ndarray,
                 pacer: BudgetPacer, costs: dict[str, float] | CostEstimates, seed: int,
                 history: ReplayDataset | None = None, history_features: np.ndarray | None = None,
                 task_context: bool = True) -> BudgetRun:
    """Stream ``dataset`` through ``policy`` paced by ``pacer`` (see
    :mod:`banditroute.learners.pacing`).

    The policy learns quality alone (reward ``clip(quality, -1, 1)``); each decision takes
    ``pacer.choose`` on the policy's scores and the models' estimated ``costs`` (fixed per
    model, or a :class:`~banditroute.service.replay.cost_estimates.CostEstimates` that prices
    each prompt and learns from each realised cost), the pacer accounts the estimate at the
    decision and the realised cost at its outcome (the next step: the run is sequential).
    Time is the step index. ``history`` and its ``history_features``: a pass over these
    prompts (no learning by the policy, no outcome) sets the pacer's starting cost weight, as
    a route that has been running would have it. ``task_context``: pass each prompt's task
    label to the policy as its group, in that pass and in the run.

    Examples
    --------
    >>> from banditroute.learners.registry import make_policy
    >>> ds = ReplayDataset("toy", ["p"] * 50, ["cheap", "dear"],
    ...                    np.array([[0.5, 1.0]] * 50), np.array([[0.0, 0.1]] * 50))
    >>> pol = make_policy("linucb", ds.models, dim=1)
    >>> run = run_budgeted(pol, ds, np.zeros((50, 1)), BudgetPacer(budget_per_request_usd=0.05,
    ...                    step=0.1), {"cheap": 0.0, "dear": 0.1}, seed=0)
    >>> 0.03 < run.cost_per_query < 0.07
    True
    """
    if features.shape[0] != dataset.n:
        raise ValueError("features: need one row per prompt")
    index = {model: j for j, model in enumerate(dataset.models)}

    def priced(x: np.ndarray) -> Mapping[str, float]:
        return costs.predict(x) if isinstance(costs, CostEstimates) else costs

    if history is not None and history_features is not None:
        rng_w = np.random.default_rng([seed, 4])
        for t, (x, group) in enumerate(zip(history_features, _groups(history, task_context),
                                           strict=True)):
            decision = policy.select(x, rng=rng_w, group=group)
            estimate = priced(x)
            choice = pacer.choose(decision.scores, estimate, decision.arm, t=float(t))
            pacer.on_decision(float(t), estimate[choice.arm])
    order = np.random.default_rng(seed).permutation(dataset.n)
    rng = np.random.default_rng([seed, 1])
    n = dataset.n
    choices = np.empty(n, dtype=np.int64)
    props = np.empty(n)
    weights = np.empty(n)
    paced = np.zeros(n, dtype=bool)
    groups = _groups(dataset, task_context)
    for t, i in enumerate(order):
        x, group = features[i], groups[i]
        decision = policy.select(x, rng=rng, group=group)
        estimate = priced(x)
        choice = pacer.choose(decision.scores, estimate, decision.arm, t=float(t))
        j = index[choice.arm]
        choices[t] = j
        props[t] = decision.propensity if not choice.reason else 1.0
        weights[t] = choice.cost_weight
        paced[t] = bool(choice.reason)
        pacer.on_decision(float(t), estimate[choice.arm])
        quality = float(dataset.quality[i, j])
        policy.update(x, choice.arm, min(max(quality, REWARD_MIN), REWARD_MAX), group=group)
        pacer.on_outcome(float(t), estimate[choice.arm], float(dataset.cost[i, j]))
        if isinstance(costs, CostEstimates):
            costs.update(choice.arm, x, float(dataset.cost[i, j]))
    got = dataset.quality[order, choices]
    best = dataset.quality[order].max(axis=1)
    return BudgetRun(
        order=order, choices=choices, propensities=props, quality=got,
        cost=dataset.cost[order, choices], reward=got, regret=best - got,
        cost_weights=weights, paced=paced,
    )
