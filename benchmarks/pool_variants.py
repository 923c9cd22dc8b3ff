"""Do the defaults hold on pools they were not chosen on? Peers on reshaped RouterBench pools.

The defaults were chosen on three validation cuts, two of which have only two models. Users'
pools differ: no frontier model, a handful of models, other task mixes. This script reshapes
RouterBench into such pools, writes each as a generic replay file (docs/replay.md, "Generic
format") and runs ``benchmarks/peers.py``'s benchmark on it, so every variant goes through
the same loader a user's own file would:

* ``no-gpt4``: the ten models without GPT-4 (the best single model is then a cheap one);
* ``subset-<seed>``: 5 to 9 models drawn at random (numpy seed);
* ``no-mbpp``: ARC and Winogrande only, all eleven models;
* ``cheap-dearer``: the five cheapest models cost 5x as much (a flatter price ladder).

It prints one JSON object with, per variant, banditroute's default cold AIQ, the best
Vowpal Wabbit variant's, and the late-half hull gap at the default operating point, the
issue's checks for held-out data. With ``--warm``, also default LinUCB warm-started on the
variant's train split, as ``banditroute replay --warm-start`` runs it: its hull gap at the
operating point (``warm_hull_gap``, the "on or above the single-model hull" check) and late
hull gap. Nothing here was tuned on these variants.

Usage::

    python benchmarks/pool_variants.py [--split test] [--seeds 3] [--subsets 2] [--warm]
        [--out benchmarks/results/pool_variants.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers
from replay import print_json

from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.loaders import default_data_root, load_dataset


def write_generic(path: Path, parts: dict[str, ReplayDataset], models: Sequence[str],
                  keep_task: str | None = None,
                  price_scale: dict[str, float] | None = None) -> Path:
    """Write ``parts`` (split name -> dataset) as one generic JSONL file, rows in order."""
    with path.open("w", encoding="utf-8") as out:
        for split, data in parts.items():
            for i in range(data.n):
                task = data.tasks[i] if data.tasks else ""
                if keep_task is not None and task == keep_task:
                    continue
                row: dict[str, Any] = {"prompt": data.prompts[i], "split": split,
                                       "task": task, "id": f"{split}-{i}"}
                for model in models:
                    j = data.models.index(model)
                    row[f"quality:{model}"] = float(data.quality[i, j])
                    scale = (price_scale or {}).get(model, 1.0)
                    row[f"cost:{model}"] = float(data.cost[i, j]) * scale
                out.write(json.dumps(row) + "\n")
    return path


def variants(parts: dict[str, ReplayDataset], folder: Path, subsets: int) -> dict[str, Path]:
    models = parts["train"].models
    out = {"no-gpt4": write_generic(folder / "no-gpt4.jsonl", parts,
                                    [m for m in models if not m.startswith("gpt-4")])}
    for seed in range(subsets):
        rng = np.random.default_rng(seed)
        size = int(rng.integers(5, 10))
        keep = sorted(rng.choice(models, size, replace=False).tolist(), key=models.index)
        out[f"subset-{seed}"] = write_generic(folder / f"subset-{seed}.jsonl", parts, keep)
    out["no-mbpp"] = write_generic(folder / "no-mbpp.jsonl", parts, models, keep_task="mbpp")
    mean_cost = parts["train"].mean_cost()
    cheap = [models[j] for j in np.argsort(mean_cost)[:5]]
    out["cheap-dearer"] = write_generic(folder / "cheap-dearer.jsonl", parts, models,
                                        price_scale=dict.fromkeys(cheap, 5.0))
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subsets", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--warm", action="store_true",
                        help="also warm-started LinUCB (banditroute replay --warm-start)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    start = time.perf_counter()
    parts = {s: load_dataset("routerbench", s, root) for s in ("train", "test")}
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="banditroute-variants-") as tmp:
        for name, path in variants(parts, Path(tmp), args.subsets).items():
            print(f"{name}: running peers", file=sys.stderr, flush=True)
            report = peers.run_peers(load_dataset(str(path), args.split),
                                     list(range(args.seeds)))
            point = report["banditroute_operating_point"]
            warm = _warm(path, args.split, args.seeds) if args.warm else {}
            rows[name] = {
                "models": len(report["models"]), "n_prompts": report["n_prompts"],
                "best_single_model": report["best_single_model"],
                "banditroute_cold_aiq": round(report["banditroute_cold_aiq"], 4),
                "vw_best_cold_aiq": round(report["vw_best_cold_aiq"], 4),
                "vw_best_variant": report["vw_best_variant"],
                "zero_router_aiq": round(report["zero_router_aiq"], 4),
                "late_hull_gap": round(point["late_hull_gap"], 4),
                "accuracy_vs_best_single": round(point["accuracy_vs_best_single"], 4),
                "cost_vs_best_single": round(point["cost_vs_best_single"], 4),
                **warm,
            }
    out = {"benchmark": "pool_variants", "split": args.split, "seeds": args.seeds,
           "variants": rows,
           "banditroute_at_least_vw_everywhere": all(
               r["banditroute_cold_aiq"] >= r["vw_best_cold_aiq"] for r in rows.values()),
           "worst_late_hull_gap": min(r["late_hull_gap"] for r in rows.values()),
           **({"worst_warm_hull_gap": min(r["warm_hull_gap"] for r in rows.values())}
              if args.warm else {}),
           "seconds": round(time.perf_counter() - start, 1)}
    print_json(out, args.out)
    return out


def _warm(path: Path, split: str, seeds: int) -> dict[str, float]:
    """Default LinUCB warm-started on ``path``'s train split, scored on ``split``."""
    from banditroute.service.replay.cli import default_cost_weights
    from banditroute.service.replay.experiment import ReplayConfig, run_experiment
    from banditroute.service.replay.runner import PolicySpec, default_featurizer

    data, history = load_dataset(str(path), split), load_dataset(str(path), "train")
    config = ReplayConfig([PolicySpec.parse("linucb")], default_cost_weights(data),
                          seeds=list(range(seeds)), warm_start=True)
    report = run_experiment(data, config, default_featurizer(), history)
    warm = next(r for r in report["results"] if r["start"] == "warm")
    return {"warm_aiq": round(float(warm["aiq"]), 4),
            "warm_hull_gap": round(float(warm["hull_gap"]), 4),
            "warm_late_hull_gap": round(float(warm["late_hull_gap"]), 4),
            "warm_accuracy_vs_best_single": round(float(warm["accuracy_vs_best_single"]), 4),
            "warm_cost_vs_best_single": round(float(warm["cost_vs_best_single"]), 4)}


if __name__ == "__main__":
    main()
