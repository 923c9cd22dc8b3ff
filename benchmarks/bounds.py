"""What a router could reach with full information: bounds for the warm-start targets.

On the validation cut of a dataset's train split (the fit half labels everything; the test
split is never read), this traces three static cost/quality curves over cost weights
``f / c_gpt4`` (``f`` quality points per GPT-4 call):

* ``task``: knows each prompt's task (the dataset's ``task`` column) and sends it to the model
  with the best mean ``quality - f * cost / c_gpt4`` on that task in the fit half;
* ``ridge``: a full-information ridge regression per model on banditroute's 64-d features
  (standardised; intercept prior 1, context prior ``context_ridge`` per coordinate), the same
  model class as LinUCB's mean with every model's reward seen for every fit prompt;
* ``warm``: banditroute's default LinUCB, warm-started on the fit half, one online pass.

Each curve's accuracy at ``--at`` of GPT-4's cost (upper envelope, linear between points) is
printed with the curve itself, as percentages of GPT-4's accuracy and cost. It answers "is
97 % at 25 % reachable with these features and a linear model?" before anyone tunes for it.

``--feature-sets`` also asks whether richer features would lift the ridge bound: the same
full-information ridge on the 64-d features plus the task one-hot, plus WordLlama's 256-d
embedding (:func:`~banditroute.learners.embeddings.wordllama_embedder`), and on 256 hashed
dimensions plus the task, each at context priors 16, 64, 256 and 1,024 per coordinate
(``ridge_feature_sets`` in the output: accuracy at ``--at``, as a fraction of GPT-4's).

``--nonlinear`` asks the same of two models that are not one linear fit over all prompts
(``nonlinear`` in the output): a ridge per task on the 64-d features (the task interacting
with every feature) at context priors 64 to 10^6, and k nearest neighbours among the fit
prompts of the same task by WordLlama cosine similarity (k = 50, 100, 200), each neighbour's
reward seen for every model.

Usage::

    python benchmarks/bounds.py [--dataset routerbench] [--at 0.25] [--seeds 2]
        [--feature-sets] [--nonlinear] [--out benchmarks/results/bounds_routerbench.json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay import print_json, split_fit_validation, standardized_design

from banditroute.learners.metrics import convex_hull
from banditroute.service.replay.hull import hull_quality
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import (
    PolicySpec,
    default_featurizer,
    run_online,
    warm_start,
)

GPT4 = "gpt-4-1106-preview"
FRACTIONS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5)


def envelope_at(points: Sequence[tuple[float, float]], cost: float) -> float:
    """Best accuracy reachable at ``cost`` by mixing two of ``points`` (cost, accuracy): the
    single-model hull's rule (:func:`~banditroute.learners.metrics.convex_hull`) applied to a
    curve's points."""
    hull = convex_hull([p[0] for p in points], [p[1] for p in points])
    return round(hull_quality(hull, cost), 6)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="routerbench")
    parser.add_argument("--at", type=float, default=0.25, help="cost as a fraction of GPT-4's")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--context-ridge", type=float, default=256.0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--feature-sets", action="store_true",
                        help="also the ridge bound on richer feature sets (needs wordllama)")
    parser.add_argument("--nonlinear", action="store_true",
                        help="also a ridge per task and k nearest neighbours within the task "
                             "(needs wordllama)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    fit, val = split_fit_validation(
        load_dataset(args.dataset, "train", args.data_root or default_data_root()))
    g = val.models.index(GPT4)
    q_ref, c_ref = float(val.quality[:, g].mean()), float(val.cost[:, g].mean())
    c_fit = float(fit.cost[:, g].mean())
    rows = np.arange(val.n)
    featurize = default_featurizer(64)
    xf, xv = featurize(fit.prompts), featurize(val.prompts)
    zf, zv = standardized_design(xf, xv)
    prior = np.full(zf.shape[1], args.context_ridge)
    prior[0] = 1.0
    gram = zf.T @ zf + np.diag(prior)
    fit_tasks, val_tasks = np.array(fit.tasks), np.array(val.tasks)

    def point(choice: np.ndarray) -> tuple[float, float]:
        return (float(val.cost[rows, choice].mean()) / c_ref,
                float(val.quality[rows, choice].mean()) / q_ref)

    curves: dict[str, list[tuple[float, float]]] = {"task": [], "ridge": [], "warm": []}
    for f in FRACTIONS:
        reward = fit.quality - f * fit.cost / c_fit
        best = {t: int(reward[fit_tasks == t].mean(axis=0).argmax()) for t in set(fit.tasks)}
        curves["task"].append(point(np.array([best.get(t, g) for t in val_tasks])))
        coef = np.linalg.solve(gram, zf.T @ reward)
        curves["ridge"].append(point((zv @ coef).argmax(axis=1)))
        runs = []
        for seed in range(args.seeds):
            policy = PolicySpec("linucb").build(val.models, xv.shape[1], seed)
            warm_start(policy, fit, xf, f / c_fit, seed)
            run = run_online(policy, val, xv, f / c_fit, seed)
            runs.append((run.cost_per_query / c_ref, run.accuracy / q_ref))
        curves["warm"].append((float(np.mean([r[0] for r in runs])),
                               float(np.mean([r[1] for r in runs]))))
    extra = {}
    if args.feature_sets:
        extra["ridge_feature_sets"] = ridge_feature_sets(fit, val, point, c_fit, args.at)
    if args.nonlinear:
        extra["nonlinear"] = nonlinear(fit, val, zf, zv, point, c_fit, args.at)
    out = {
        "benchmark": "bounds", "dataset": args.dataset, "split": "validation", "n": val.n,
        "at_cost_fraction_of_gpt4": args.at,
        "accuracy_fraction_of_gpt4_at_cost": {k: envelope_at(v, args.at)
                                              for k, v in curves.items()},
        "curves": {k: [{"fraction": f, "cost": round(c, 4), "accuracy": round(a, 4)}
                       for f, (c, a) in zip(FRACTIONS, v, strict=True)]
                   for k, v in curves.items()},
        **extra,
    }
    print_json(out, args.out)
    return out


def ridge_feature_sets(fit: Any, val: Any, point: Any, c_fit: float,
                       at: float) -> dict[str, dict[str, float]]:
    """The full-information ridge's accuracy at ``at`` on richer features, per context prior.

    ``point(choice)`` maps validation choices to (cost, accuracy) as fractions of GPT-4's.
    """
    from banditroute.learners.embeddings import wordllama_embedder

    tasks = sorted(set(fit.tasks))

    def one_hot(labels: Sequence[str]) -> np.ndarray:
        return np.array([[t == u for u in tasks] for t in labels], dtype=float)

    embed = wordllama_embedder(256)
    f64, f256 = default_featurizer(64), default_featurizer(256)
    base = (np.c_[f64(fit.prompts), one_hot(fit.tasks)],
            np.c_[f64(val.prompts), one_hot(val.tasks)])
    sets = {
        "hashed64+task": base,
        "hashed64+task+wordllama256": (
            np.c_[base[0], np.array([embed(p) for p in fit.prompts], dtype=float)],
            np.c_[base[1], np.array([embed(p) for p in val.prompts], dtype=float)]),
        "hashed256+task": (np.c_[f256(fit.prompts), one_hot(fit.tasks)],
                           np.c_[f256(val.prompts), one_hot(val.tasks)]),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (xf, xv) in sets.items():
        zf, zv = standardized_design(xf, xv)
        out[name] = {}
        for ridge in (16.0, 64.0, 256.0, 1024.0):
            prior = np.full(zf.shape[1], ridge)
            prior[0] = 1.0
            gram = zf.T @ zf + np.diag(prior)
            points = []
            for f in FRACTIONS:
                coef = np.linalg.solve(gram, zf.T @ (fit.quality - f * fit.cost / c_fit))
                points.append(point((zv @ coef).argmax(axis=1)))
            out[name][f"context_prior_{ridge:g}"] = envelope_at(points, at)
        print(f"{name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def nonlinear(fit: Any, val: Any, zf: np.ndarray, zv: np.ndarray, point: Any, c_fit: float,
              at: float) -> dict[str, float]:
    """Full-information accuracy at ``at`` of a ridge per task and of k nearest neighbours
    within the task (see the module doc); ``zf``/``zv`` are the standardised 64-d designs."""
    from banditroute.learners.embeddings import wordllama_embedder

    fit_tasks, val_tasks = np.array(fit.tasks), np.array(val.tasks)
    embed = wordllama_embedder(256)

    def unit(prompts: Sequence[str]) -> np.ndarray:
        e = np.array([embed(p) for p in prompts], dtype=float)
        return e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-12)

    same_task = val_tasks[:, None] == fit_tasks[None, :]
    similarity = np.where(same_task, unit(val.prompts) @ unit(fit.prompts).T, -np.inf)
    order = np.argsort(-similarity, axis=1)
    out: dict[str, float] = {}

    def envelope(predict: Any) -> float:
        points = []
        for f in FRACTIONS:
            points.append(point(predict(fit.quality - f * fit.cost / c_fit).argmax(axis=1)))
        return envelope_at(points, at)

    for prior in (64.0, 256.0, 1024.0, 1e6):
        def per_task(reward: np.ndarray, prior: float = prior) -> np.ndarray:
            pred = np.zeros((val.n, val.k))
            for task in set(val.tasks):
                a, b = fit_tasks == task, val_tasks == task
                ridge = np.full(zf.shape[1], prior)
                ridge[0] = 1.0
                coef = np.linalg.solve(zf[a].T @ zf[a] + np.diag(ridge), zf[a].T @ reward[a])
                pred[b] = zv[b] @ coef
            return pred
        out[f"ridge_per_task_context_prior_{prior:g}"] = envelope(per_task)
    for k in (50, 100, 200):
        def neighbours(reward: np.ndarray, k: int = k) -> np.ndarray:
            return np.asarray(reward[order[:, :k]].mean(axis=1))
        out[f"knn_within_task_k{k}"] = envelope(neighbours)
    print(f"nonlinear: {out}", file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    main()
