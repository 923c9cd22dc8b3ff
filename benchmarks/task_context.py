"""Does a prompt's task label help the bandit online, and how strongly should it be trusted?

A caller often knows what kind of request it sends (the product feature, the task, the
tenant) and passes it as ``categorical_context``. Hashed into the feature vector's few
categorical slots, such a label did nothing (57 MMLU subjects cannot be separated by 8
signed slots: measured in docs/replay.md, "What was tried"). The ridge policies therefore
give each distinct categorical context its own effect per model (``group`` in
``Policy.select``; exact ridge with one fixed effect per group, see
``banditroute.learners._groups``), with prior precision ``group_ridge``.

This script is the procedure that chose the default ``group_ridge``: ``banditroute
replay``'s default LinUCB through ``run_experiment``, cold and warm-started on the fit half
of the train split, scored on its validation half (the test split is never read), the
default lambda grid, on every shared dataset with task labels:

* ``none``: the task label is not passed (``ReplayConfig(task_context=False)``);
* ``group_ridge=G``: the label is passed as the request's group, for each ``G`` of the grid.

The default is the ``G`` with the best worst-case change of AIQ over datasets and starts.

Usage::

    python benchmarks/task_context.py [--datasets routellm-mmlu,routellm-mtbench,routerbench]
        [--seeds 2] [--grid 1,4,16] [--out benchmarks/results/task_context_validation.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay import print_json, split_fit_validation

from banditroute.service.replay.cli import default_cost_weights
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import PolicySpec, default_featurizer

KEYS = ("aiq", "cpt50", "accuracy", "cost_per_query", "hull_gap", "late_hull_gap")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="routellm-mmlu,routellm-mtbench,routerbench")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--operating-fraction", type=float, default=None,
                        help="operating point of the lambda grid (default: replay's); 0.2 "
                             "reproduces the files written before 2026-12-01")
    parser.add_argument("--grid", default="1,4,16")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    grid = [float(g) for g in args.grid.split(",")]
    start = time.perf_counter()
    featurize = default_featurizer()
    report: dict[str, Any] = {"benchmark": "task_context", "split": "validation",
                              "seeds": args.seeds, "grid": grid, "datasets": {}}
    worst: dict[float, float] = {g: float("inf") for g in grid}
    for name in args.datasets.split(","):
        train = load_dataset(name, "train", root)
        if not train.tasks:
            raise SystemExit(f"{name}: no task labels")
        fit, validation = split_fit_validation(train)
        variants = [("none", "linucb", False)] + [
            (f"group_ridge={g:g}", f"linucb:group_ridge={g!r},fit_group_ridge=false", True)
            for g in grid]  # the fixed prior: what this chose is fit_group_ridge's start
        rows: dict[str, Any] = {"task_labels": len(set(fit.tasks or []))}
        for label, spec, task_context in variants:
            config = ReplayConfig([PolicySpec.parse(spec)],
                                  default_cost_weights(validation, args.operating_fraction),
                                  seeds=list(range(args.seeds)), warm_start=True,
                                  task_context=task_context)
            result = run_experiment(validation, config, featurize, history=fit)
            for r in result["results"]:
                rows[f"{label} {r['start']}"] = {k: round(float(r[k]), 4) for k in KEYS if k in r}
            print(f"{name} {label}: done", file=sys.stderr, flush=True)
        for g in grid:
            for s in ("cold", "warm"):
                change = rows[f"group_ridge={g:g} {s}"]["aiq"] - rows[f"none {s}"]["aiq"]
                worst[g] = min(worst[g], change)
        report["datasets"][name] = rows
    report["worst_aiq_change"] = {f"{g:g}": round(v, 4) for g, v in worst.items()}
    report["chosen_group_ridge"] = max(grid, key=lambda g: worst[g])
    report["seconds"] = round(time.perf_counter() - start, 1)
    print_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
