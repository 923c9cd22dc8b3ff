"""A full replay experiment: policies x start (cold/warm) x seeds x cost weights -> report.

For every policy and every seed, one online pass per cost weight (lambda) gives a
(cost per query, quality) point; the lambda sweep traces the policy's cost-quality curve,
whose AIQ (RouterBench) or APGR/CPT (RouteLLM, two-model datasets) summarise it. The
first cost weight is the *operating point*: its accuracy, cost, per-task breakdown and
regret curve are reported at the top. Numbers are means over seeds with their standard
deviation (``*_std``, ``ddof=0``). Cold and warm start are separate result entries.

Also at the operating point, per result entry (mean and ``*_std`` over seeds, and per
seed in ``per_seed``):

* ``hull_gap`` and ``late_hull_gap``: accuracy minus the single-model convex hull
  (RouterBench's zero router) at the policy's own mean cost, over the whole pass and over
  its second half by stream position, the hull being computed on the same prompts
  (:mod:`banditroute.service.replay.hull`). Positive: the policy beats any
  mixture of single models at that cost; the late gap shows where learning ended up,
  without the exploration of the first half. ``hull_gap_ci95`` and ``late_hull_gap_ci95``:
  95 % bootstrap intervals of the mean gaps that resample the seeds and the prompts
  (:func:`~banditroute.service.replay.hull.hull_gap_interval`); the seeds share the
  prompts, so ``*_std`` alone does not show how sure a gap is.
* ``regret_vs_best_fixed_curve`` / ``final_regret_vs_best_fixed``: cumulative reward of
  always calling ``best_fixed_model`` (the single model with the best total reward on the
  stream at that cost weight) minus the policy's, i.e. a learning curve against the best
  arm in hindsight (negative: the policy beats every single model).
* ``share_curve``: the fraction of decisions per model in ``share_windows`` consecutive
  windows of the pass (mean over seeds), so routing drift over time is visible.

For two-model datasets the (strong-call fraction, quality) curve used by APGR and CPT is
the policy's lambda sweep plus the two trivial routers (all weak at 0 %, all strong at
100 %), which any threshold router reaches at its extreme thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from banditroute.learners.metrics import aiq, apgr, cpt
from banditroute.service.replay.baselines import baseline_report, strong_weak
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.hull import hull_gap, hull_gap_interval, late_hull_gap
from banditroute.service.replay.runner import (
    Featurizer,
    PolicySpec,
    RunResult,
    reward_matrix,
    run_online,
    warm_start,
)

__all__ = ["ReplayConfig", "best_fixed_model", "regret_vs_fixed", "run_experiment", "share_curve"]

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class ReplayConfig:
    """What to run.

    Parameters
    ----------
    policies
        Policies to replay.
    cost_weights
        Lambda values; the first is the operating point, all of them form the sweep.
    seeds
        One stream order and policy seed per value.
    warm_start
        Also run every policy warm-started on ``history`` (reported separately).
    warm_mode
        ``"full"`` or ``"replay"`` (see :func:`banditroute.service.replay.runner.warm_start`).
    cold_start
        Run cold-start passes (default True).
    regret_points
        Number of points kept on each regret curve.
    share_windows
        Number of consecutive windows of the pass in ``share_curve``.
    task_context
        Pass each prompt's task label, where the dataset has one, to the policies as the
        request's categorical context (default True; see
        :meth:`~banditroute.service.replay.dataset.ReplayDataset.categorical_contexts`).
    """

    policies: list[PolicySpec]
    cost_weights: list[float]
    seeds: Sequence[int] = DEFAULT_SEEDS
    warm_start: bool = False
    warm_mode: str = "full"
    cold_start: bool = True
    regret_points: int = 100
    share_windows: int = 20
    task_context: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("policies: need at least one policy")
        if not self.cost_weights:
            raise ValueError("cost_weights: need at least one cost weight")
        if any((not np.isfinite(w)) or w < 0 for w in self.cost_weights):
            raise ValueError("cost_weights: must be finite and >= 0")
        if not self.seeds:
            raise ValueError("seeds: need at least one seed")
        if not (self.cold_start or self.warm_start):
            raise ValueError("cold_start: at least one of cold and warm start must run")
        if self.regret_points < 1:
            raise ValueError("regret_points: must be >= 1")
        if self.share_windows < 1:
            raise ValueError("share_windows: must be >= 1")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def _curve_metrics(points: list[tuple[float, float]], base: dict[str, Any]) -> dict[str, float]:
    """AIQ of one seed's sweep points (cost, quality), normalised by the largest cost."""
    return {"aiq": aiq([p[0] for p in points], [p[1] for p in points],
                       max_cost=max(base["max_cost"], max(p[0] for p in points)))}


def _two_model_metrics(fractions: list[float], qualities: list[float],
                       base: dict[str, Any]) -> dict[str, float]:
    weak_q, strong_q = base["weak_accuracy"], base["strong_accuracy"]
    xs = [0.0, *fractions, 1.0]
    ys = [weak_q, *qualities, strong_q]
    if strong_q == weak_q:
        return {}
    return {
        "apgr": apgr(xs, ys, weak_q, strong_q),
        "cpt50": cpt(xs, ys, weak_q, strong_q, 0.5),
        "cpt80": cpt(xs, ys, weak_q, strong_q, 0.8),
    }


def _subsample(curve: np.ndarray, points: int) -> tuple[list[int], np.ndarray]:
    n = curve.shape[-1]
    idx = np.unique(np.linspace(0, n - 1, num=min(points, n)).round().astype(np.int64))
    return (idx + 1).tolist(), curve[..., idx]


def best_fixed_model(rewards: np.ndarray, cost: np.ndarray) -> int:
    """Column of the single model with the best total reward (ties: lower total cost).

    Examples
    --------
    >>> best_fixed_model(np.array([[1.0, 0.5], [0.0, 0.5]]), np.array([[2.0, 1.0]] * 2))
    1
    """
    return int(np.lexsort((cost.sum(axis=0), -rewards.sum(axis=0)))[0])


def regret_vs_fixed(run: RunResult, rewards: np.ndarray, model: int) -> np.ndarray:
    """Cumulative reward of always calling column ``model`` minus ``run``'s, per round.

    Examples
    --------
    >>> run = RunResult(order=np.array([1, 0]), choices=np.array([0, 1]),
    ...                 propensities=np.ones(2), quality=np.zeros(2), cost=np.zeros(2),
    ...                 reward=np.array([0.2, 0.5]), regret=np.zeros(2))
    >>> regret_vs_fixed(run, np.array([[0.0, 0.5], [0.3, 0.9]]), model=1).tolist()
    [0.7, 0.7]
    """
    return np.cumsum(rewards[run.order, model] - run.reward)


def share_curve(choices: np.ndarray, k: int, windows: int) -> tuple[list[int], np.ndarray]:
    """Per-model share of decisions in ``windows`` consecutive windows of a pass.

    Returns the last round (1-based) of each window and a ``(windows, k)`` array whose
    rows sum to 1 (fewer windows when the pass has fewer rounds).

    Examples
    --------
    >>> ends, shares = share_curve(np.array([0, 0, 1, 0, 1, 1]), k=2, windows=3)
    >>> ends, shares.tolist()
    ([2, 4, 6], [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    """
    parts = [p for p in np.array_split(np.asarray(choices), min(windows, len(choices)))
             if p.size]
    ends = np.cumsum([p.size for p in parts]).tolist()
    shares = np.stack([np.bincount(p, minlength=k) / p.size for p in parts])
    return [int(e) for e in ends], shares


def _by_task(dataset: ReplayDataset, runs: list[RunResult]) -> dict[str, Any]:
    if dataset.tasks is None:
        return {}
    tasks = np.asarray(dataset.tasks)
    out: dict[str, Any] = {}
    for task in sorted(set(dataset.tasks)):
        acc, cost, shares = [], [], []
        for run in runs:
            mask = tasks[run.order] == task
            acc.append(float(run.quality[mask].mean()))
            cost.append(float(run.cost[mask].mean()))
            shares.append(np.bincount(run.choices[mask], minlength=dataset.k) / mask.sum())
        share = np.mean(shares, axis=0)
        out[task] = {
            "n": int((tasks == task).sum()),
            "accuracy": float(np.mean(acc)),
            "cost_per_query": float(np.mean(cost)),
            "model_shares": {m: round(float(s), 4) for m, s in zip(dataset.models, share,
                                                                   strict=True) if s > 0},
        }
    return out


def run_experiment(dataset: ReplayDataset, config: ReplayConfig, featurize: Featurizer,
                   history: ReplayDataset | None = None,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``config`` on ``dataset`` and return the JSON-ready report.

    ``history`` (e.g. the train split) is used for warm start and as the reference of the
    cost-threshold baseline. ``progress`` receives one line per finished pass.
    """
    if config.warm_start and history is None:
        raise ValueError("history: warm start needs a labelled history (e.g. the train split)")
    if history is not None and history.models != dataset.models:
        raise ValueError("history: must have the same models as the dataset")
    operating = float(config.cost_weights[0])
    sweep_weights = sorted(set(float(w) for w in config.cost_weights))
    features = featurize(dataset.prompts)
    hist_features = featurize(history.prompts) if (history is not None
                                                   and config.warm_start) else None
    base = baseline_report(dataset, operating, history)
    pair = strong_weak(dataset)
    starts = (["cold"] if config.cold_start else []) + (["warm"] if config.warm_start else [])
    results: list[dict[str, Any]] = []
    dim = features.shape[1]
    for spec in config.policies:
        for start in starts:
            per_weight: dict[float, list[RunResult]] = {w: [] for w in sweep_weights}
            for seed in config.seeds:
                for weight in sweep_weights:
                    policy = spec.build(dataset.models, dim, seed)
                    if start == "warm":
                        assert history is not None and hist_features is not None
                        warm_start(policy, history, hist_features, weight, seed,
                                   config.warm_mode, config.task_context)
                    run = run_online(policy, dataset, features, weight, seed,
                                     config.task_context)
                    per_weight[weight].append(run)
                    if progress is not None:
                        progress(f"{spec.label} {start} seed={seed} lambda={weight:g}: "
                                 f"accuracy={run.accuracy:.4f} cost={run.cost_per_query:.6f}")
            results.append(_summarise(dataset, spec, start, operating, sweep_weights,
                                      per_weight, base, pair, config))
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "split": dataset.split,
        "n_prompts": dataset.n,
        "models": list(dataset.models),
        "seeds": list(config.seeds),
        "cost_weight": operating,
        "cost_weights": sweep_weights,
        "warm_mode": config.warm_mode if config.warm_start else None,
        "feature_dim": dim,
        "task_context": config.task_context and dataset.tasks is not None,
        "notes": {k: v for k, v in dataset.notes.items()},
        **{k: base[k] for k in ("best_single_model", "best_single_accuracy",
                                "best_single_cost_per_query", "oracle_accuracy",
                                "oracle_cost_per_query")},
        "baselines": base,
        "results": results,
        **config.extra,
    }
    headline = next((r for r in results if r["start"] == ("warm" if config.warm_start
                                                           else "cold")), results[0])
    for key in ("policy", "start", "accuracy", "accuracy_std", "cost_per_query",
                "cost_per_query_std", "aiq", "aiq_std", "accuracy_vs_best_single",
                "cost_vs_best_single", "apgr", "cpt50", "cpt80", "hull_gap", "hull_gap_std",
                "late_hull_gap", "late_hull_gap_std", "best_fixed_model",
                "final_regret_vs_best_fixed"):
        if key in headline:
            report[key] = headline[key]
    return report


def _summarise(dataset: ReplayDataset, spec: PolicySpec, start: str, operating: float,
               sweep_weights: list[float], per_weight: dict[float, list[RunResult]],
               base: dict[str, Any], pair: tuple[int, int] | None,
               config: ReplayConfig) -> dict[str, Any]:
    seeds = len(config.seeds)
    sweep = []
    for weight in sweep_weights:
        runs = per_weight[weight]
        acc, acc_sd = _mean_std([r.accuracy for r in runs])
        cost, cost_sd = _mean_std([r.cost_per_query for r in runs])
        reward, _ = _mean_std([r.mean_reward for r in runs])
        point: dict[str, Any] = {"cost_weight": weight, "accuracy": acc, "accuracy_std": acc_sd,
                                 "cost_per_query": cost, "cost_per_query_std": cost_sd,
                                 "mean_reward": reward}
        if pair is not None:
            point["strong_fraction"] = float(np.mean([r.shares(dataset.k)[pair[0]]
                                                      for r in runs]))
        sweep.append(point)
    curve_metrics: dict[str, list[float]] = {}
    for s in range(seeds):
        pts = [(per_weight[w][s].cost_per_query, per_weight[w][s].accuracy)
               for w in sweep_weights]
        metrics = _curve_metrics(pts, base)
        if pair is not None:
            metrics.update(_two_model_metrics(
                [float(per_weight[w][s].shares(dataset.k)[pair[0]]) for w in sweep_weights],
                [per_weight[w][s].accuracy for w in sweep_weights], base))
        for key, value in metrics.items():
            curve_metrics.setdefault(key, []).append(value)
    runs = per_weight[operating]
    acc, acc_sd = _mean_std([r.accuracy for r in runs])
    cost, cost_sd = _mean_std([r.cost_per_query for r in runs])
    regret = np.stack([r.cumulative_regret() for r in runs])
    rounds, sub = _subsample(regret, config.regret_points)
    shares = np.mean([r.shares(dataset.k) for r in runs], axis=0)
    rewards = reward_matrix(dataset, operating)
    fixed = best_fixed_model(rewards, dataset.cost)
    vs_fixed = np.stack([regret_vs_fixed(r, rewards, fixed) for r in runs])
    _, vs_fixed_sub = _subsample(vs_fixed, config.regret_points)
    window_ends, _ = share_curve(runs[0].choices, dataset.k, config.share_windows)
    window_shares = np.mean([share_curve(r.choices, dataset.k, config.share_windows)[1]
                             for r in runs], axis=0)
    gaps = [hull_gap(dataset, r.order, r.choices) for r in runs]
    late_gaps = [late_hull_gap(dataset, r.order, r.choices) for r in runs]
    gap, gap_sd = _mean_std(gaps)
    late_gap, late_gap_sd = _mean_std(late_gaps)
    passes = [(r.order, r.choices) for r in runs]
    out: dict[str, Any] = {
        "policy": spec.label,
        "algorithm": spec.algorithm,
        "hyperparameters": dict(spec.hyperparameters),
        "start": start,
        "cost_weight": operating,
        "accuracy": acc,
        "accuracy_std": acc_sd,
        "cost_per_query": cost,
        "cost_per_query_std": cost_sd,
        "mean_reward": float(np.mean([r.mean_reward for r in runs])),
        "accuracy_vs_best_single": acc / base["best_single_accuracy"]
        if base["best_single_accuracy"] > 0 else None,
        "cost_vs_best_single": cost / base["best_single_cost_per_query"]
        if base["best_single_cost_per_query"] > 0 else None,
        "final_regret": float(regret[:, -1].mean()),
        "final_regret_std": float(regret[:, -1].std()),
        "mean_propensity": float(np.mean([r.propensities.mean() for r in runs])),
        "model_shares": {m: round(float(s), 4) for m, s in zip(dataset.models, shares,
                                                               strict=True) if s > 0},
        "regret_curve": {"rounds": rounds, "mean": sub.mean(axis=0).tolist(),
                         "std": sub.std(axis=0).tolist()},
        "hull_gap": gap,
        "hull_gap_std": gap_sd,
        "late_hull_gap": late_gap,
        "late_hull_gap_std": late_gap_sd,
        "hull_gap_ci95": list(hull_gap_interval(dataset, passes)),
        "late_hull_gap_ci95": list(hull_gap_interval(dataset, passes, late=True)),
        "best_fixed_model": dataset.models[fixed],
        "final_regret_vs_best_fixed": float(vs_fixed[:, -1].mean()),
        "final_regret_vs_best_fixed_std": float(vs_fixed[:, -1].std()),
        "regret_vs_best_fixed_curve": {"rounds": rounds,
                                       "mean": vs_fixed_sub.mean(axis=0).tolist(),
                                       "std": vs_fixed_sub.std(axis=0).tolist()},
        "share_curve": {"rounds": window_ends,
                        "shares": {m: window_shares[:, j].tolist()
                                   for j, m in enumerate(dataset.models)}},
        "sweep": sweep,
        "by_task": _by_task(dataset, runs),
        "per_seed": [{"seed": int(seed), "accuracy": r.accuracy,
                      "cost_per_query": r.cost_per_query, "hull_gap": g,
                      "late_hull_gap": lg,
                      "final_regret_vs_best_fixed": float(vf[-1])}
                     for seed, r, g, lg, vf in zip(config.seeds, runs, gaps, late_gaps,
                                                   vs_fixed, strict=True)],
    }
    for key, values in curve_metrics.items():
        mean, sd = _mean_std(values)
        out[key] = mean
        out[f"{key}_std"] = sd
    return out
