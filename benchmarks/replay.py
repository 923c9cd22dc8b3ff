"""Replay benchmark on real routing data; prints one JSON object.

Protocol (no choice is ever made on a test split):

1. Each dataset's train split is cut in two by a stable hash of the prompt id
   (``fit`` / ``validation``). For every algorithm (LinUCB, linear Thompson sampling,
   epsilon-greedy) and start (cold, warm), a small grid of hyperparameters and feature
   dimensions, and a grid of cost weights (lambda), are scored on the validation part:
   cold = one online pass over validation from an empty policy; warm = fit on ``fit``
   with full information, then one online pass over validation (seeds and grids in
   ``SETTINGS``; 1 seed for MMLU, whose validation part has ~3,500 prompts).
2. Selection. RouterBench: the rule a user with a budget wants - the highest validation
   accuracy among configurations (hyperparameters x lambda) whose validation cost per
   query is at most ``--cost-target`` % of the best single model's (default 30, the bar),
   minus ``--cost-headroom`` % of that target (default 10, i.e. <= 27 % on validation), so
   that validation-to-test noise rarely pushes the test cost over the target; if none is,
   the cheapest. RouteLLM (two models): the
   lowest validation CPT(50%) of the lambda sweep, then the highest APGR; the operating
   lambda is the cheapest one recovering >= 50 % of the quality gap on validation.
3. Test. The chosen configuration runs on the test split, one online pass per seed
   (5 seeds), cold and warm start separately (warm = fitted on the whole train split
   with full information), plus the lambda sweep for the cost-quality curve, AIQ
   (RouterBench) and APGR/CPT (RouteLLM).

Usage: ``python benchmarks/replay.py [--quick] [--out DIR] [--data-root DIR]
[--datasets NAME ...] [--cost-target PCT] [--cost-headroom PCT]``.
Full JSON/Markdown/PNG reports are written to ``benchmarks/results/tuned/`` (``--out``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from banditroute.learners.metrics import apgr, cpt  # noqa: E402
from banditroute.service.replay.baselines import strong_weak  # noqa: E402
from banditroute.service.replay.dataset import ReplayDataset  # noqa: E402
from banditroute.service.replay.experiment import ReplayConfig, run_experiment  # noqa: E402
from banditroute.service.replay.loaders import default_data_root, hash_split, load_dataset  # noqa: E402
from banditroute.service.replay.report import markdown_table, to_json, write_report  # noqa: E402
from banditroute.service.replay.runner import (  # noqa: E402
    PolicySpec,
    default_featurizer,
    run_online,
    warm_start,
)

DATASETS = ("routerbench", "routellm-gsm8k", "routellm-mmlu")
ALGORITHMS = ("linucb", "thompson", "epsilon_greedy")
COST_TARGET, COST_HEADROOM = 0.30, 0.10  # validation limit: 30 % x (1 - 10 %) = 27 %
BAR_QUALITY, BAR_COST = 0.95, 0.30
TEST_SEEDS = (0, 1, 2, 3, 4)
#: Per dataset: seeds and feature dims scored on validation, and the cost weights as
#: fractions f of 1 / (best single model's cost per query on the TRAIN split), i.e.
#: lambda = f / c_best: "always using the best model costs f quality points per query".
SETTINGS: dict[str, dict[str, Any]] = {
    "routerbench": {"tune_seeds": (0, 1), "dims": (64, 128),
                    "tune": (0.05, 0.075, 0.1, 0.115, 0.125, 0.1375, 0.15, 0.175, 0.2),
                    "sweep": (0.0, 0.05, 0.1, 0.125, 0.15, 0.2, 0.3, 1.0, 3.0, 10.0)},
    "routellm-gsm8k": {"tune_seeds": (0, 1), "dims": (64, 128),
                       "tune": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
                       "sweep": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)},
    "routellm-mmlu": {"tune_seeds": (0,), "dims": (64,),
                      "tune": (0.0, 0.05, 0.1, 0.2, 0.3, 0.5),
                      "sweep": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)},
}


def hyperparameter_grid(algorithm: str, quick: bool, dims: Sequence[int] = (64, 128)
                        ) -> list[dict[str, Any]]:
    """Two scalings of the learners' defaults (standardised features with ridge 1, raw
    features with ridge 10) times the feature dimensions; exploration floor 0.005."""
    dims = (64,) if quick else tuple(dims)
    if algorithm == "linucb":
        base: dict[str, Any] = {"alpha": 1.0, "explore": 0.005}
    elif algorithm == "thompson":
        base = {"v": 0.5, "explore": 0.005}
    else:
        base = {"epsilon": 0.05}
    pairs = (("standard", 1.0),) if quick else (("standard", 1.0), ("none", 10.0))
    return [{**base, "scaling": scaling, "ridge": ridge, "feature_dim": dim}
            for (scaling, ridge), dim in itertools.product(pairs, dims)]


def dataset_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the validation benchmarks' ``--datasets``, ``--seeds``, ``--data-root``
    and ``--out`` (add a benchmark's own options to it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--datasets", default="routerbench,routellm-gsm8k,routellm-mmlu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    return parser


def print_json(report: dict[str, Any], out: Path | None) -> None:
    """Print ``report`` as indented JSON and, with ``out``, write it there too."""
    text = json.dumps(report, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    print(text)


def split_fit_validation(train: ReplayDataset) -> tuple[ReplayDataset, ReplayDataset]:
    """Stable 50/50 cut of the train split by a hash of each prompt id."""
    ids = train.ids or [str(i) for i in range(train.n)]
    fit = [i for i, s in enumerate(ids) if hash_split("fit:" + s + train.prompts[i][:64])
           == "train"]
    fit_set = set(fit)
    val = [i for i in range(train.n) if i not in fit_set]
    return train.subset(fit, split="fit"), train.subset(val, split="validation")


def history_and_pass(dataset: str, validation: bool) -> tuple[ReplayDataset, ReplayDataset]:
    """The split a pass learns from first and the split it runs on: train and test, or with
    ``validation`` the fit and validation halves of train (the test split is not read)."""
    train = load_dataset(dataset, "train", None)
    if validation:
        return split_fit_validation(train)
    return train, load_dataset(dataset, "test", None)


def standardized_design(fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """``[1, (x - mean) / sd]`` for ``fit`` and each of ``others``, with ``fit``'s mean and sd
    (a constant column keeps sd 1): the static ridge fits' design matrices."""
    mu, sd = fit.mean(axis=0), fit.std(axis=0)
    sd[sd < 1e-9] = 1.0
    return [np.c_[np.ones(len(x)), (x - mu) / sd] for x in (fit, *others)]


def threshold_cpt(data: ReplayDataset, strong: int, weak: int, score: np.ndarray) -> float:
    """CPT(50%) of the router that sends the prompts with the highest ``score`` to ``strong``
    (the rest to ``weak``), swept over 101 fractions of calls to ``strong``."""
    order = np.argsort(-score)
    fractions = np.linspace(0.0, 1.0, 101)
    quality = []
    for f in fractions:
        pick = np.zeros(data.n, dtype=bool)
        pick[order[: round(f * data.n)]] = True
        quality.append(float(np.where(pick, data.quality[:, strong],
                                      data.quality[:, weak]).mean()))
    q = data.mean_quality()
    return float(cpt(fractions, quality, q[weak], q[strong], 0.5))


def best_single_cost(data: ReplayDataset) -> float:
    """Mean cost of the best single model (best quality, then cheaper)."""
    q, c = data.mean_quality(), data.mean_cost()
    return float(c[int(np.lexsort((c, -q))[0])])


# --------------------------------------------------------------------------- workers
_STATE: dict[str, Any] = {}


def _features(dim: int, part: str) -> np.ndarray:
    key = f"{part}:{dim}"
    if key not in _STATE:
        featurize = default_featurizer(dim)
        _STATE[key] = featurize(_STATE[part].prompts)
    return np.asarray(_STATE[key])


def _tune_job(args: tuple[str, str, dict[str, Any], list[float]]) -> dict[str, Any]:
    algorithm, start, params, weights = args
    hyper = {k: v for k, v in params.items() if k != "feature_dim"}
    dim = int(params["feature_dim"])
    fit, val = _STATE["fit"], _STATE["val"]
    x_fit, x_val = _features(dim, "fit"), _features(dim, "val")
    spec = PolicySpec(algorithm, hyper)
    pair = strong_weak(val)
    points = []
    for weight in weights:
        accs, costs, strong = [], [], []
        for seed in _STATE["tune_seeds"]:
            policy = spec.build(val.models, x_val.shape[1], seed)
            if start == "warm":
                warm_start(policy, fit, x_fit, weight, seed)
            run = run_online(policy, val, x_val, weight, seed)
            accs.append(run.accuracy)
            costs.append(run.cost_per_query)
            if pair is not None:
                strong.append(float(run.shares(val.k)[pair[0]]))
        points.append({"cost_weight": weight, "accuracy": float(np.mean(accs)),
                       "cost_per_query": float(np.mean(costs)),
                       "strong_fraction": float(np.mean(strong)) if strong else None})
    return {"algorithm": algorithm, "start": start, "params": params, "points": points}


def _test_job(args: tuple[str, str, dict[str, Any], list[float]]) -> dict[str, Any]:
    algorithm, start, params, weights = args
    hyper = {k: v for k, v in params.items() if k != "feature_dim"}
    config = ReplayConfig([PolicySpec(algorithm, hyper)], weights, seeds=TEST_SEEDS,
                          cold_start=start == "cold", warm_start=start == "warm")
    featurize = default_featurizer(int(params["feature_dim"]))
    return run_experiment(_STATE["test"], config, featurize, history=_STATE["train"])


def _init(state: dict[str, Any]) -> None:
    _STATE.update(state)


# --------------------------------------------------------------------------- selection
def _select(dataset: str, tuned: list[dict[str, Any]], val: ReplayDataset,
            cost_limit: float = COST_TARGET * (1.0 - COST_HEADROOM)
            ) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Chosen params, operating lambda and the validation numbers behind the choice.

    Many models: the most accurate configuration on validation whose validation cost is
    at most ``cost_limit`` x the best single model's (the cheapest if none is).
    """
    pair = strong_weak(val)
    if pair is None:
        limit = cost_limit * best_single_cost(val)
        candidates = [(p["accuracy"], -p["cost_per_query"], t, p) for t in tuned
                      for p in t["points"]]
        feasible = [c for c in candidates if -c[1] <= limit]
        if feasible:
            acc, neg_cost, t, p = max(feasible, key=lambda c: (c[0], c[1]))
        else:
            acc, neg_cost, t, p = max(candidates, key=lambda c: c[1])
        return t["params"], p["cost_weight"], {
            "validation_accuracy": acc, "validation_cost_per_query": -neg_cost,
            "validation_cost_limit": limit, "feasible": bool(feasible),
            "configurations_scored": len(candidates)}
    strong, weak = pair
    q = val.mean_quality()
    scored = []
    for t in tuned:
        pts = t["points"]
        xs = [0.0, *[p["strong_fraction"] for p in pts], 1.0]
        ys = [float(q[weak]), *[p["accuracy"] for p in pts], float(q[strong])]
        c50 = cpt(xs, ys, float(q[weak]), float(q[strong]), 0.5)
        ap = apgr(xs, ys, float(q[weak]), float(q[strong]))
        scored.append((c50 if math.isfinite(c50) else 1.0, -ap, t))
    c50, neg_ap, t = min(scored, key=lambda s: (s[0], s[1]))
    target = float(q[weak]) + 0.5 * (float(q[strong]) - float(q[weak]))
    reach = [p for p in t["points"] if p["accuracy"] >= target]
    op = (min(reach, key=lambda p: p["strong_fraction"]) if reach
          else max(t["points"], key=lambda p: p["accuracy"]))
    return t["params"], op["cost_weight"], {
        "validation_cpt50": c50, "validation_apgr": -neg_ap,
        "configurations_scored": len(scored)}


def run_dataset(dataset: str, data_root: Path, out_dir: Path, quick: bool, workers: int,
                cost_target: float = COST_TARGET, cost_headroom: float = COST_HEADROOM
                ) -> dict[str, Any]:
    """Tune on train, report on test, write the reports; a summary dict."""
    started = time.time()
    train = load_dataset(dataset, "train", data_root)
    test = load_dataset(dataset, "test", data_root)
    fit, val = split_fit_validation(train)
    scale = 1.0 / best_single_cost(train)
    settings = SETTINGS[dataset]
    tune_weights = [round(f * scale, 4) for f in settings["tune"]]
    sweep = sorted(set(round(f * scale, 4) for f in settings["sweep"]))
    state = {"fit": fit, "val": val, "train": train, "test": test,
             "tune_seeds": settings["tune_seeds"]}
    jobs = [(a, s, p, tune_weights) for a in ALGORITHMS for s in ("cold", "warm")
            for p in hyperparameter_grid(a, quick, settings["dims"])]
    with ProcessPoolExecutor(max_workers=workers, initializer=_init,
                             initargs=(state,)) as pool:
        tuned = []
        for done, t in enumerate(pool.map(_tune_job, jobs, chunksize=1), start=1):
            tuned.append(t)
            print(f"{dataset}: tuned {done}/{len(jobs)} ({time.time() - started:.0f} s)",
                  file=sys.stderr, flush=True)
        choices = {}
        for a in ALGORITHMS:
            for s in ("cold", "warm"):
                group = [t for t in tuned if t["algorithm"] == a and t["start"] == s]
                choices[(a, s)] = _select(dataset, group, val,
                                          cost_target * (1.0 - cost_headroom))
        test_jobs = [(a, s, params, [op, *[w for w in sweep if w != op]])
                     for (a, s), (params, op, _) in choices.items()]
        reports = []
        for done, rep in enumerate(pool.map(_test_job, test_jobs, chunksize=1), start=1):
            reports.append(rep)
            print(f"{dataset}: tested {done}/{len(test_jobs)} ({time.time() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    merged = {**reports[0], "results": []}
    for (choice, (params, op, why)), rep in zip(choices.items(), reports, strict=True):
        result = rep["results"][0]
        result["policy"] = f"{choice[0]}"
        result["feature_dim"] = params["feature_dim"]
        result["selected_on_train"] = {"params": params, "cost_weight": op, **why}
        merged["results"].append(result)
    two_models_val = strong_weak(val) is not None
    merged["cost_weights"] = sweep
    merged["cost_weight"] = None  # per result (chosen on train)
    merged["protocol"] = ("hyperparameters, feature dim and cost weight chosen on a "
                          "fit/validation cut of the train split; reported on test")
    if not two_models_val:
        merged["cost_target"] = cost_target
        merged["validation_cost_limit"] = round(cost_target * (1.0 - cost_headroom), 4)
    base = merged["baselines"]
    two_models = strong_weak(test) is not None
    merged["bar"] = ("CPT(50%) below the random router's 0.5" if two_models else
                     f">= {BAR_QUALITY:.0%} of the best single model's accuracy at <= "
                     f"{BAR_COST:.0%} of its cost per query, at the operating point")
    for r in merged["results"]:
        if two_models:
            r["meets_bar"] = bool(r["cpt50"] < 0.5)
        else:
            r["meets_bar"] = bool(
                r["accuracy"] >= BAR_QUALITY * base["best_single_accuracy"]
                and r["cost_per_query"] <= BAR_COST * base["best_single_cost_per_query"])
    for key in ("policy", "start", "accuracy", "accuracy_std", "cost_per_query",
                "cost_per_query_std", "aiq", "aiq_std", "apgr", "cpt50", "cpt80",
                "accuracy_vs_best_single", "cost_vs_best_single"):
        merged.pop(key, None)
    # headline: the warm-start result that scored best on validation (never chosen on test)
    warm = [(r, choices[(r["policy"], "warm")][2]) for r in merged["results"]
            if r["start"] == "warm"]
    if strong_weak(test) is None:
        head = max(warm, key=lambda rw: rw[1]["validation_accuracy"]
                   if rw[1]["feasible"] else -1.0)[0]
    else:
        head = min(warm, key=lambda rw: rw[1]["validation_cpt50"])[0]
    for key in ("policy", "start", "cost_weight", "accuracy", "accuracy_std", "cost_per_query",
                "cost_per_query_std", "aiq", "aiq_std", "apgr", "cpt50", "cpt80",
                "accuracy_vs_best_single", "cost_vs_best_single", "meets_bar"):
        if key in head:
            merged[key] = head[key]
    merged["headline_rule"] = "warm-start result with the best validation score"
    merged["elapsed_s"] = round(time.time() - started, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(merged, out_dir, stem=dataset)
    (out_dir / f"{dataset}_tuning.json").write_text(to_json(
        {"dataset": dataset, "fit_n": fit.n, "validation_n": val.n,
         "tune_cost_weights": tune_weights, "scored": tuned}) + "\n")
    return summarise(merged)


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one dataset report (flat enough to read)."""
    base = report["baselines"]
    keep = ("policy", "start", "split", "seeds", "cost_weight", "accuracy", "accuracy_std",
            "cost_per_query", "cost_per_query_std", "best_single_model", "best_single_accuracy",
            "best_single_cost_per_query", "oracle_accuracy", "oracle_cost_per_query", "aiq",
            "apgr", "cpt50", "cpt80", "accuracy_vs_best_single", "cost_vs_best_single",
            "meets_bar", "bar")
    out: dict[str, Any] = {k: report[k] for k in keep if k in report}
    out["n_prompts"] = report["n_prompts"]
    out["zero_router_aiq"] = base["zero_router_aiq"]
    out["random"] = base["random"]
    out["results"] = [
        {k: r.get(k) for k in ("policy", "start", "cost_weight", "feature_dim", "accuracy",
                               "accuracy_std", "cost_per_query", "cost_per_query_std",
                               "accuracy_vs_best_single", "cost_vs_best_single", "aiq", "apgr",
                               "cpt50", "cpt80", "final_regret", "meets_bar")
         if k in r}
        for r in report["results"]
    ]
    for r, full in zip(out["results"], report["results"], strict=True):
        r["hyperparameters"] = full["hyperparameters"]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny grids (smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tuned")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    parser.add_argument("--cost-target", type=float, default=100 * COST_TARGET,
                        help="many-model datasets: budget, %% of the best single model's cost "
                        "per query (default %(default)s)")
    parser.add_argument("--cost-headroom", type=float, default=100 * COST_HEADROOM,
                        help="select on validation at cost <= target x (1 - headroom %%) "
                        "(default %(default)s)")
    args = parser.parse_args(argv)
    if not (0 < args.cost_target <= 1000 and 0 <= args.cost_headroom < 100):
        parser.error("--cost-target must be in (0, 1000] and --cost-headroom in [0, 100)")
    root = args.data_root or default_data_root(ROOT)
    if root is None or not root.is_dir():
        print(json.dumps({"error": "routing data not found; pass --data-root"}))
        raise SystemExit(1)
    started = time.time()
    summary: dict[str, Any] = {"benchmark": "replay", "data_root": str(root),
                               "protocol": __doc__.split("Protocol")[1].split("Usage")[0]
                               .strip().replace("\n", " ")}
    markdown = []
    for dataset in args.datasets:
        summary[dataset] = run_dataset(dataset, root, args.out, args.quick, args.workers,
                                       args.cost_target / 100, args.cost_headroom / 100)
        markdown.append((args.out / f"{dataset}.md").read_text())
        (args.out / f"{dataset}_summary.json").write_text(to_json(summary[dataset], indent=1))
    (args.out / "README.md").write_text(
        "# Replay benchmark results\n\nReproduce: `python benchmarks/replay.py`. Protocol: "
        "see the docstring of benchmarks/replay.py (hyperparameters, feature dim and cost "
        "weight chosen on the train split only).\n\n" + "\n".join(markdown))
    summary["elapsed_s"] = round(time.time() - started, 1)
    (args.out / "summary.json").write_text(to_json(summary, indent=1) + "\n")
    print(to_json(summary))


if __name__ == "__main__":
    main()

__all__ = ["hyperparameter_grid", "main", "markdown_table", "run_dataset"]
