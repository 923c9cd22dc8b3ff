"""How the policy defaults are chosen: a small grid scored on validation data only.

Procedure (the test splits are never read):

1. Each dataset's train split is cut into ``fit`` and ``validation`` by a stable hash
   (:func:`replay.split_fit_validation`, the same cut as ``benchmarks/replay.py``).
2. Every candidate setting runs cold, one online pass per seed over ``validation``, with the
   replay's default lambda grid (:func:`~banditroute.service.replay.cli.default_cost_weights`).
3. Score per dataset: AIQ minus the single-model hull's AIQ on the same prompts (how far the
   router is above or below "pick a model, or mix two"). A setting's score is its mean over
   datasets, so no single dataset decides. Differences within ``TIE_BAND`` (0.002) are
   noise: the best-scoring setting wins only when it beats the shipped default by more than
   that; otherwise the shipped default stays (no churn of defaults on noise).
4. The winner per algorithm is what ``learners/linear.py`` ships as its default; the test
   ``tests/test_learners_defaults.py`` checks that the code's defaults are the grid's
   ``DEFAULTS`` entries, and this script prints whether the winner equals them.
5. Operating point (``--stage operating``): the shipped LinUCB runs cold on the same
   validation cuts at every fraction of the replay's lambda grid; the operating fraction
   is the one with the largest hull gap (accuracy minus the single-model hull at the same
   cost, whole pass, mean over seeds and datasets): the point where routing adds the most
   over choosing or mixing single models. ``replay``'s first lambda uses it
   (:data:`~banditroute.service.replay.cli.DEFAULT_COST_FRACTIONS`).

Usage::

    python benchmarks/defaults.py [--seeds 3] [--datasets routerbench,routellm-gsm8k,routellm-mmlu]
        [--jobs 3] [--out benchmarks/results/defaults.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay import print_json, split_fit_validation

from banditroute.service.replay.baselines import baseline_report
from banditroute.service.replay.cli import DEFAULT_COST_FRACTIONS, default_cost_weights
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.hull import hull_gap
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import PolicySpec, default_featurizer, run_online

#: Candidate hyperparameters per algorithm; ``context_ridge`` as a multiple of the dimension.
#: ``explore`` is the uniform mixing probability (the propensity floor is ``explore / k``).
GRID: dict[str, list[dict[str, float]]] = {
    "linucb": [
        {"alpha": a, "context_ridge": m, "explore": e}
        for e in (0.02, 0.01, 0.005)
        for a in (0.5, 0.25, 0.35, 0.75, 1.0)
        for m in (1.0, 4.0)
    ],
    "thompson": [
        {"v": v, "context_ridge": 1.0, "explore": e}
        for e in (0.01, 0.005)
        for v in (0.25, 0.1, 0.5)
    ],
}
#: Exploration that decays (tried after the constant floors):
#: ``explore`` shrinks like ``sqrt(d / (d + n))`` after ``n`` updates, never below 0.002.
GRID["linucb"] += [{"alpha": 0.35, "context_ridge": 4.0, "explore": 0.01, "explore_decay": d,
                    "explore_min": 0.002} for d in (30.0, 100.0, 300.0, 1000.0)]
GRID["thompson"] += [{"v": 0.1, "context_ridge": 1.0, "explore": 0.01, "explore_decay": d,
                      "explore_min": 0.002} for d in (100.0, 1000.0)]
#: What the code ships (learners/linear.py); checked by tests/test_learners_defaults.py.
DEFAULTS: dict[str, dict[str, float]] = {
    "linucb": {"alpha": 0.35, "context_ridge": 4.0, "explore": 0.01, "explore_decay": 100.0,
               "explore_min": 0.002},
    "thompson": {"v": 0.1, "context_ridge": 1.0, "explore": 0.01},
}
#: Score differences treated as ties (step 3).
TIE_BAND = 0.002
#: The operating lambda fraction step 5 selects; ``replay`` ships it first in its grid.
OPERATING_FRACTION = 0.1
FEATURE_DIM = 64


def _spec(algorithm: str, params: dict[str, float]) -> PolicySpec:
    hp: dict[str, Any] = dict(params)
    hp["context_ridge"] = params["context_ridge"] * FEATURE_DIM
    hp.setdefault("explore_decay", None)  # a grid entry without one has a constant floor
    label = algorithm + ":" + ",".join(f"{k}={v:g}" for k, v in params.items())
    return PolicySpec(algorithm, hp, label)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="routerbench,routellm-gsm8k,routellm-mmlu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--stage", choices=("grid", "operating"), default="grid")
    parser.add_argument("--jobs", type=int, default=3, help="datasets scored in parallel")
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    featurize = default_featurizer(FEATURE_DIM)
    if args.stage == "operating":
        return _operating(args, root, featurize)
    start = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    names = args.datasets.split(",")
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(names)))) as pool:
        for name, per_policy in zip(
            names, pool.map(_score_dataset, names, repeat(root), repeat(args.seeds)), strict=True
        ):
            for label, score in per_policy.items():
                scores.setdefault(label, {})[name] = score
    out: dict[str, Any] = {"benchmark": "defaults", "seeds": args.seeds,
                           "datasets": args.datasets.split(","), "candidates": [],
                           "winners": {}, "defaults": DEFAULTS}
    for algorithm, grid in GRID.items():
        means = {}
        for params in grid:
            label = _spec(algorithm, params).label
            means[label] = float(np.mean(list(scores[label].values())))
            out["candidates"].append({"policy": label, "mean_aiq_minus_hull": means[label],
                                      "per_dataset": scores[label]})
        winner, best = choose_winner(grid, [means[_spec(algorithm, p).label] for p in grid],
                                     DEFAULTS[algorithm])
        out["winners"][algorithm] = {"params": winner, "mean_aiq_minus_hull": best,
                                     "equals_shipped_default": winner == DEFAULTS[algorithm]}
    out["seconds"] = round(time.perf_counter() - start, 1)
    print_json(out, args.out)
    return out


def choose_winner(grid: Sequence[dict[str, float]], means: Sequence[float],
                  shipped: dict[str, float]) -> tuple[dict[str, float], float]:
    """Step 3's rule: the best mean wins unless it beats the shipped entry by <= ``TIE_BAND``.

    >>> grid = [{"alpha": 0.5}, {"alpha": 0.35}, {"alpha": 1.0}]
    >>> choose_winner(grid, [0.0016, 0.0034, -0.01], {"alpha": 0.35})
    ({'alpha': 0.35}, 0.0034)
    >>> choose_winner(grid, [0.0100, 0.0034, -0.01], {"alpha": 0.35})
    ({'alpha': 0.5}, 0.01)
    >>> choose_winner(grid, [0.0050, 0.0034, -0.01], {"alpha": 0.35})
    ({'alpha': 0.35}, 0.0034)
    """
    top = int(np.argmax(means))
    if shipped in grid:
        own = list(grid).index(shipped)
        if means[top] <= means[own] + TIE_BAND:
            return dict(grid[own]), float(means[own])
    return dict(grid[top]), float(means[top])


def _score_dataset(name: str, root: Path | None, seeds: int) -> dict[str, float]:
    """Every grid candidate's AIQ minus the hull's on ``name``'s validation cut."""
    _, validation = split_fit_validation(load_dataset(name, "train", root))
    hull = baseline_report(validation, 0.0)["zero_router_aiq"]
    specs = [_spec(a, p) for a, grid in GRID.items() for p in grid]
    config = ReplayConfig(specs, default_cost_weights(validation), seeds=list(range(seeds)))
    report = run_experiment(validation, config, default_featurizer(FEATURE_DIM))
    print(f"{name}: validation {validation.n} prompts scored", file=sys.stderr)
    return {res["policy"]: float(res["aiq"]) - float(hull) for res in report["results"]}


def _operating(args: argparse.Namespace, root: Path | None, featurize: Any) -> dict[str, Any]:
    """Step 5: the lambda fraction where the shipped LinUCB's hull gap is largest."""
    start = time.perf_counter()
    gaps: dict[float, list[float]] = {f: [] for f in DEFAULT_COST_FRACTIONS}
    for name in args.datasets.split(","):
        _, validation = split_fit_validation(load_dataset(name, "train", root))
        features = featurize(validation.prompts)
        weights = default_cost_weights(validation)
        for fraction, weight in zip(DEFAULT_COST_FRACTIONS, weights, strict=True):
            for seed in range(args.seeds):
                policy = PolicySpec("linucb").build(validation.models, features.shape[1], seed)
                run = run_online(policy, validation, features, weight, seed)
                gaps[fraction].append(hull_gap(validation, run.order, run.choices))
        print(f"{name}: validation {validation.n} prompts scored", file=sys.stderr)
    means = {f: float(np.mean(v)) for f, v in gaps.items()}
    best = max(means, key=lambda f: (means[f], -f))
    out = {"benchmark": "defaults-operating", "seeds": args.seeds,
           "datasets": args.datasets.split(","), "mean_hull_gap_by_fraction": means,
           "operating_fraction": best, "shipped_fraction": DEFAULT_COST_FRACTIONS[0],
           "equals_shipped_default": best == DEFAULT_COST_FRACTIONS[0],
           "seconds": round(time.perf_counter() - start, 1)}
    print_json(out, args.out)
    return out


if __name__ == "__main__":
    main()
