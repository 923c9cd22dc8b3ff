"""What semantic prompt features add: the default hashed features against alternatives.

For each dataset and feature set this prints, in one JSON object:

* ``cold``: ``banditroute replay``'s default LinUCB, cold start, one online pass per seed over
  the test split, with the default lambda grid: AIQ, operating point (accuracy and cost
  relative to the best single model) and late-half hull gap;
* ``static``: a full-information ridge regression per model fitted on the train split
  (what a perfect warm start could know from these features), then a threshold sweep on
  the test split: CPT(50%) for two-model datasets, AIQ of the sweep otherwise;
* ``us_per_prompt``: feature extraction cost.

Feature sets: ``hashed`` (the default ``FeatureExtractor(64)``: dense signals plus hashed
words and character trigrams), ``dense`` (its 16 dense signals alone, an ablation) and
``hashed+wordllama`` (``FeatureExtractor(128, embedding_fn=wordllama_embedder(64))``, skipped
when ``wordllama`` is not installed).

Usage::

    python benchmarks/features.py [--datasets routerbench,routellm-gsm8k,routellm-mmlu]
        [--seeds 3] [--out benchmarks/results/features.json]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from replay import (  # benchmarks/replay.py: this script's folder is on sys.path
    dataset_parser,
    print_json,
    standardized_design,
    threshold_cpt,
)

from banditroute.learners.features import FeatureExtractor
from banditroute.learners.metrics import aiq
from banditroute.service.replay.baselines import strong_weak
from banditroute.service.replay.cli import default_cost_weights
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import PolicySpec

Featurizer = Callable[[Sequence[str]], np.ndarray]


def _featurizers() -> dict[str, tuple[Featurizer, float]]:
    """Name -> (featurizer, microseconds per prompt on a typical prompt)."""
    sample = "How do I reverse a list in Python? list.reverse() returns None and I am confused."
    out: dict[str, tuple[Featurizer, float]] = {}
    hashed = FeatureExtractor(dim=64)

    def rows(fx: FeatureExtractor, cols: slice = slice(None)) -> Featurizer:
        return lambda prompts: np.stack([fx.extract(p)[cols] for p in prompts])

    candidates: list[tuple[str, FeatureExtractor, slice]] = [
        ("hashed", hashed, slice(None)),
        ("dense", hashed, slice(0, 16)),
    ]
    try:
        from banditroute.learners.embeddings import wordllama_embedder

        embed = wordllama_embedder(64)
        candidates.append(("hashed+wordllama",
                           FeatureExtractor(dim=128, embedding_fn=embed, embedding_dim=64),
                           slice(None)))
    except ImportError:
        pass
    for name, fx, cols in candidates:
        start = time.perf_counter()
        for _ in range(2000):
            fx.extract(sample)
        out[name] = (rows(fx, cols), (time.perf_counter() - start) / 2000 * 1e6)
    return out


def _static(train: ReplayDataset, test: ReplayDataset, xtr: np.ndarray,
            xte: np.ndarray) -> dict[str, float]:
    """Full-information ridge per model on train; threshold sweep on test."""
    ztr, zte = standardized_design(xtr, xte)
    prior = np.full(ztr.shape[1], float(ztr.shape[1] - 1))
    prior[0] = 1.0
    coef = np.linalg.solve(ztr.T @ ztr + np.diag(prior), ztr.T @ train.quality)
    pred = zte @ coef
    pair = strong_weak(test)
    if pair is not None:
        strong, weak = pair
        return {"cpt50": threshold_cpt(test, strong, weak, pred[:, strong] - pred[:, weak])}
    costs, accs = [], []
    mean_cost = train.mean_cost()
    rows = np.arange(test.n)
    for weight in default_cost_weights(train):
        choice = np.argmax(pred - weight * mean_cost[None, :], axis=1)
        costs.append(float(test.cost[rows, choice].mean()))
        accs.append(float(test.quality[rows, choice].mean()))
    return {"aiq": aiq(costs, accs, max_cost=max(float(test.mean_cost().max()), max(costs)))}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = dataset_parser(__doc__.splitlines()[0]).parse_args(argv)
    root = args.data_root or default_data_root()
    featurizers = _featurizers()
    report: dict[str, Any] = {
        "benchmark": "features", "seeds": args.seeds,
        "us_per_prompt": {k: round(v[1], 1) for k, v in featurizers.items()}, "datasets": {}}
    start = time.perf_counter()
    for name in args.datasets.split(","):
        train, test = load_dataset(name, "train", root), load_dataset(name, "test", root)
        rows: dict[str, Any] = {}
        for fname, (featurize, _) in featurizers.items():
            config = ReplayConfig([PolicySpec("linucb")], default_cost_weights(test),
                                  seeds=list(range(args.seeds)))
            res = run_experiment(test, config, featurize)["results"][0]
            rows[fname] = {
                "cold": {k: res[k] for k in ("aiq", "accuracy_vs_best_single",
                                             "cost_vs_best_single", "late_hull_gap", "cpt50")
                         if k in res},
                "static": _static(train, test, featurize(train.prompts),
                                  featurize(test.prompts)),
            }
        report["datasets"][name] = rows
    report["seconds"] = round(time.perf_counter() - start, 1)
    print_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
