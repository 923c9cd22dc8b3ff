"""Compare policy settings on validation data only: the tool for trying a default.

Each dataset's train split is cut into ``fit`` and ``validation`` (the cut of
``benchmarks/replay.py``); every ``--specs`` entry runs one online pass per seed over
``validation``, cold and warm-started on ``fit``, at the replay's default lambda grid and
with the task labels as categorical context (as ``banditroute replay`` does by default;
``--no-task-context``: without them, as for a pool whose prompts carry no label).
The test splits are never read.

``--pools`` adds the five reshaped RouterBench pools of ``benchmarks/pool_variants.py``
(``pool:no-gpt4``, ``pool:subset-0``, ...), cut the same way: the pool shapes the defaults
were not chosen on, on their train splits only.

Per dataset, spec and start it reports AIQ minus the single-model hull's AIQ on the same
prompts (``aiq_vs_hull``), the late-half hull gap (mean over seeds and the worst seed), and
accuracy as a fraction of the best single model's; then each spec's mean over datasets.

Usage::

    python benchmarks/validation.py --specs "linucb|linucb:alpha=0.5" \\
        [--datasets routerbench,routellm-gsm8k,routellm-mmlu,routellm-mtbench] [--seeds 3] \\
        [--pools] [--no-task-context] [--jobs 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import fmean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pool_variants
from replay import print_json, split_fit_validation

from banditroute.service.replay.cli import default_cost_weights
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import PolicySpec, default_featurizer


def _run(
    job: tuple[str, str, str, int, Path, float | None, bool],
) -> tuple[str, str, dict[str, Any]]:
    name, source, spec, seeds, root, operating, task_context = job
    fit, validation = split_fit_validation(load_dataset(source, "train", root))
    config = ReplayConfig([PolicySpec.parse(spec)], default_cost_weights(validation, operating),
                          seeds=list(range(seeds)), warm_start=True,
                          task_context=task_context)
    result = run_experiment(validation, config, default_featurizer(), history=fit)
    hull = float(result["baselines"]["zero_router_aiq"])
    best = float(result["best_single_accuracy"])
    rows = {
        r["start"]: {
            "aiq_vs_hull": round(float(r["aiq"]) - hull, 4),
            "late_hull_gap": round(float(r["late_hull_gap"]), 4),
            "worst_seed_late_hull_gap": round(min(s["late_hull_gap"] for s in r["per_seed"]), 4),
            "accuracy_vs_best_single": round(float(r["accuracy"]) / best, 4),
        }
        for r in result["results"]
    }
    return name, spec, rows


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", required=True, help="policy specs separated by '|'")
    parser.add_argument("--datasets",
                        default="routerbench,routellm-gsm8k,routellm-mmlu,routellm-mtbench")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--operating-fraction", type=float, default=None,
                        help="operating point of the lambda grid (default: replay's); 0.2 "
                             "reproduces the files written before 2026-12-01")
    parser.add_argument("--pools", action="store_true",
                        help="also the reshaped RouterBench pools of pool_variants.py")
    parser.add_argument("--no-task-context", dest="task_context", action="store_false",
                        help="do not pass the task labels as categorical context (a pool "
                             "without labels)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    specs = args.specs.split("|")
    for spec in specs:
        PolicySpec.parse(spec)  # a typo fails now, not after minutes of work
    sources = {name: name for name in args.datasets.split(",")}
    start = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "validation", "split": "validation",
                              "seeds": args.seeds, "task_context": args.task_context,
                              "datasets": {}, "mean_over_datasets": {}}
    with tempfile.TemporaryDirectory(prefix="banditroute-pools-") as tmp:
        if args.pools:  # written from the train split only: the test split stays unread
            parts = {"train": load_dataset("routerbench", "train", root)}
            for name, path in pool_variants.variants(parts, Path(tmp), 2).items():
                sources[f"pool:{name}"] = str(path)
        jobs = [(name, source, spec, args.seeds, root, args.operating_fraction, args.task_context)
                for name, source in sources.items() for spec in specs]
        with ProcessPoolExecutor(max(1, args.jobs)) as pool:
            for name, spec, rows in pool.map(_run, jobs):
                report["datasets"].setdefault(name, {})[spec] = rows
                print(f"{name} {spec}: done", file=sys.stderr, flush=True)
    datasets = list(sources)
    for spec in specs:
        report["mean_over_datasets"][spec] = {
            start_: {key: round(fmean(report["datasets"][d][spec][start_][key]
                                      for d in datasets), 4)
                     for key in ("aiq_vs_hull", "late_hull_gap")}
            | {"worst_seed_late_hull_gap": min(report["datasets"][d][spec][start_][
                "worst_seed_late_hull_gap"] for d in datasets)}
            for start_ in ("cold", "warm")
        }
    report["seconds"] = round(time.perf_counter() - start, 1)
    print_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
