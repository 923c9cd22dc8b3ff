"""Side by side: banditroute's replay defaults and Vowpal Wabbit on the same data; one JSON object.

Both sides see the same prompts, the same stream order per seed
(``numpy.random.default_rng(seed).permutation(n)``), the same exploration generator
(``default_rng([seed, 1])``), the same reward ``clip(quality - lambda * cost_usd, -1, 1)``
(:func:`banditroute.service.replay.runner.reward_matrix`) and the same lambda grid
(:func:`banditroute.service.replay.cli.default_cost_weights`; the first lambda is the
operating point). Every pass is cold start and one online pass with bandit feedback only.

banditroute
    Exactly ``banditroute replay --dataset D --split S --seeds N`` with its defaults
    (:data:`BANDITROUTE_POLICIES`, feature dimension :data:`BANDITROUTE_FEATURE_DIM`,
    :func:`~banditroute.service.replay.experiment.run_experiment`); each default policy is
    one method, ``linucb`` is the headline (``banditroute_cold_aiq``). The operating-point
    pass is run once more per seed to get its choices for the late hull gap (the run is
    deterministic; its accuracy, and late hull gap where the report has one, are checked
    against the report's).
Vowpal Wabbit (``vowpalwabbit.Workspace``)
    ``--cb_explore_adf`` with one exploration per variant (:data:`VW_VARIANTS`: SquareCB,
    epsilon-greedy 0.05, cover 4, bag 5), ``--quiet``, ``--random_seed <seed>`` and, by
    default, ``-q sa`` (without a shared x action interaction an ADF learner's scores differ
    between actions only by the action features, i.e. it ignores the prompt). Per prompt:
    ``shared |s tok1 tok2 ...`` (the prompt lower-cased, whitespace-split, ``|`` and ``:``
    removed, first :data:`VW_MAX_TOKENS` tokens; a dataset's task label, which banditroute
    gets as categorical context, comes first as the token ``task=<label>``), then one
    ``|a model=<index>`` line per model. The action is sampled from VW's PMF with the
    ``(seed, 1)`` generator; VW learns ``index:cost:probability`` on the chosen line with
    cost = -reward.

Per method: ``aiq`` (RouterBench AIQ of each seed's lambda sweep, normalised by
``max(dataset's largest single-model mean cost, largest point cost)`` as in
``experiment.py``, then averaged over seeds), the operating point (accuracy, cost per
query, both relative to the best single model) and ``late_hull_gap``
(:func:`banditroute.service.replay.hull.late_hull_gap`: accuracy minus the single-model
hull at the same cost over the second half of the pass; mean over seeds). Two-model
datasets also get APGR and CPT(50%) as in ``experiment.py``.

Usage::

    python benchmarks/peers.py --dataset routerbench --split test --seeds 3 \\
        [--vw-variants squarecb,epsilon,cover,bag] [--out FILE] [--data-root DIR]

``--dataset`` is a built-in name (routerbench, routellm-mmlu, routellm-gsm8k,
routellm-mtbench) or a generic ``.csv``/``.jsonl`` replay file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from banditroute.learners.metrics import aiq, apgr, cpt
from banditroute.service.replay.baselines import strong_weak
from banditroute.service.replay.cli import default_cost_weights
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.hull import late_hull_gap
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import (
    PolicySpec,
    RunResult,
    default_featurizer,
    reward_matrix,
    run_online,
)

ROOT = Path(__file__).resolve().parents[1]

#: ``banditroute replay``'s defaults (``--policy`` unset, ``--feature-dim``); the first
#: policy is the headline. tests/test_benchmark_peers.py checks them against the CLI.
BANDITROUTE_POLICIES = ("linucb", "thompson", "epsilon_greedy")
BANDITROUTE_FEATURE_DIM = 64
#: Vowpal Wabbit exploration variants, by name.
VW_VARIANTS = {
    "squarecb": "--squarecb",
    "epsilon": "--epsilon 0.05",
    "cover": "--cover 4",
    "bag": "--bag 5",
}
VW_BASE = "--cb_explore_adf --quiet"
VW_INTERACTIONS = "sa"
VW_MAX_TOKENS = 300
DEFAULT_SEEDS = 3


# --------------------------------------------------------------------------- shared pieces
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def sweep_aiq(points: Sequence[tuple[float, float]], base: dict[str, Any]) -> float:
    """AIQ of one seed's (cost, quality) sweep, as ``experiment._curve_metrics`` computes it."""
    costs = [p[0] for p in points]
    return aiq(costs, [p[1] for p in points], max_cost=max(base["max_cost"], max(costs)))


def _two_model(fractions: Sequence[float], qualities: Sequence[float],
               base: dict[str, Any]) -> dict[str, float]:
    """APGR and CPT(50%) of one seed's sweep plus the two trivial routers (``experiment.py``)."""
    weak_q, strong_q = base["weak_accuracy"], base["strong_accuracy"]
    if strong_q == weak_q:
        return {}
    xs, ys = [0.0, *fractions, 1.0], [weak_q, *qualities, strong_q]
    return {"apgr": apgr(xs, ys, weak_q, strong_q), "cpt50": cpt(xs, ys, weak_q, strong_q, 0.5)}


def _ratio(value: float, reference: float) -> float | None:
    return value / reference if reference > 0 else None


def _method(name: str, family: str, operating: list[RunResult], metrics: dict[str, float],
            late_gaps: list[float], sweep: list[dict[str, float]], base: dict[str, Any],
            dataset: ReplayDataset, per_seed_aiq: list[float] | None = None,
            **extra: Any) -> dict[str, Any]:
    """One method's entry: curve metrics, its operating point and late hull gap."""
    acc, acc_sd = _mean_std([r.accuracy for r in operating])
    cost, cost_sd = _mean_std([r.cost_per_query for r in operating])
    gap, gap_sd = _mean_std(late_gaps)
    shares = np.mean([r.shares(dataset.k) for r in operating], axis=0)
    per_seed: list[dict[str, float]] = [
        {"accuracy": r.accuracy, "cost_per_query": r.cost_per_query, "late_hull_gap": g}
        for r, g in zip(operating, late_gaps, strict=True)]
    if per_seed_aiq is not None:
        for row, value in zip(per_seed, per_seed_aiq, strict=True):
            row["aiq"] = value
    return {
        "name": name, "family": family, **extra, **metrics,
        "accuracy": acc, "accuracy_std": acc_sd,
        "cost_per_query": cost, "cost_per_query_std": cost_sd,
        "accuracy_vs_best_single": _ratio(acc, base["best_single_accuracy"]),
        "cost_vs_best_single": _ratio(cost, base["best_single_cost_per_query"]),
        "late_hull_gap": gap, "late_hull_gap_std": gap_sd,
        "model_shares": {m: round(float(s), 4) for m, s in zip(dataset.models, shares,
                                                               strict=True) if s > 0},
        "per_seed": per_seed,
        "sweep": sweep,
    }


# --------------------------------------------------------------------------- banditroute
def _cached(featurize: Callable[[Sequence[str]], np.ndarray], dataset: ReplayDataset
            ) -> tuple[Callable[[Sequence[str]], np.ndarray], np.ndarray]:
    """Featurize the dataset once and hand the same matrix to run_experiment."""
    features = featurize(dataset.prompts)

    def cached(prompts: Sequence[str]) -> np.ndarray:
        if list(prompts) == list(dataset.prompts):
            return features
        return featurize(prompts)

    return cached, features


def run_banditroute(dataset: ReplayDataset, weights: Sequence[float], seeds: Sequence[int],
                    policies: Sequence[str] = BANDITROUTE_POLICIES,
                    feature_dim: int = BANDITROUTE_FEATURE_DIM,
                    progress: Callable[[str], None] | None = None
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``banditroute replay``'s in-process path; returns its report and one method per policy."""
    started = time.perf_counter()
    specs = [PolicySpec.parse(p) for p in policies]
    featurize, features = _cached(default_featurizer(feature_dim), dataset)
    config = ReplayConfig(specs, list(weights), seeds=list(seeds))
    report = run_experiment(dataset, config, featurize, None, progress=progress)
    base = report["baselines"]
    operating = float(weights[0])
    methods = []
    for spec, result in zip(specs, report["results"], strict=True):
        runs: list[RunResult] = []
        for seed, logged in zip(seeds, result["per_seed"], strict=True):
            policy = spec.build(dataset.models, features.shape[1], seed)
            run = run_online(policy, dataset, features, operating, seed)
            if not np.isclose(run.accuracy, logged["accuracy"], rtol=0, atol=1e-12):
                raise RuntimeError(f"{spec.label} seed {seed}: the re-run is not the replay's "
                                   f"pass ({run.accuracy} vs {logged['accuracy']})")
            runs.append(run)
        gaps = [late_hull_gap(dataset, r.order, r.choices) for r in runs]
        if "late_hull_gap" in result and not np.isclose(np.mean(gaps), result["late_hull_gap"]):
            raise RuntimeError(f"{spec.label}: late hull gap differs from the replay report's")
        # AIQ (and APGR/CPT) exactly as the replay report has them (mean and std over seeds)
        metrics = {key: result[key] for key in ("aiq", "aiq_std", "apgr", "apgr_std",
                                                "cpt50", "cpt50_std") if key in result}
        method = _method(
            f"banditroute:{spec.label}", "banditroute", runs, metrics, gaps,
            [{"cost_weight": p["cost_weight"], "accuracy": p["accuracy"],
              "cost_per_query": p["cost_per_query"]} for p in result["sweep"]],
            base, dataset, policy=spec.label, hyperparameters=dict(spec.hyperparameters))
        methods.append(method)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report, methods


# --------------------------------------------------------------------------- Vowpal Wabbit
def vw_text(prompt: str, max_tokens: int = VW_MAX_TOKENS) -> str:
    """The prompt as VW feature text: lower-cased tokens without ``|`` and ``:``.

    >>> vw_text("Q: Is A|B  true?\\nYes", max_tokens=4)
    'q is ab true?'
    """
    tokens = (t.replace("|", "").replace(":", "") for t in prompt.lower().split()[:max_tokens])
    return " ".join(t for t in tokens if t)


def vw_task(label: str) -> str:
    """A task label as one VW token (with its trailing space), or "" without one.

    >>> vw_task("high school maths"), vw_task("")
    ('task=high_school_maths ', '')
    """
    if not label:
        return ""
    return "task=" + "_".join(label.replace("|", "").replace(":", "").split()) + " "


def vw_args(variant: str, seed: int, interactions: str = VW_INTERACTIONS) -> str:
    """Command line of one VW variant for one seed.

    >>> vw_args("squarecb", 2)
    '--cb_explore_adf --quiet --squarecb -q sa --random_seed 2'
    """
    if variant not in VW_VARIANTS:
        raise ValueError(f"vw variant: expected one of {', '.join(VW_VARIANTS)}, got {variant!r}")
    inter = f" -q {interactions}" if interactions else ""
    return f"{VW_BASE} {VW_VARIANTS[variant]}{inter} --random_seed {seed}"


def run_vw(dataset: ReplayDataset, shared: Sequence[str], args: str, cost_weight: float,
           seed: int) -> RunResult:
    """One cold-start online pass of a VW ``--cb_explore_adf`` learner (see module doc)."""
    import vowpalwabbit

    rewards = reward_matrix(dataset, cost_weight)
    best = rewards.max(axis=1)
    order = np.random.default_rng(seed).permutation(dataset.n)
    rng = np.random.default_rng([seed, 1])
    actions = [f"|a model={j}" for j in range(dataset.k)]
    n = dataset.n
    choices = np.empty(n, dtype=np.int64)
    props = np.empty(n)
    workspace = vowpalwabbit.Workspace(args)
    try:
        for t, i in enumerate(order):
            lines = [shared[i], *actions]
            pmf = np.clip(np.asarray(workspace.predict(lines), dtype=np.float64), 0.0, None)
            pmf = pmf / pmf.sum() if pmf.sum() > 0 else np.full(dataset.k, 1.0 / dataset.k)
            j = min(int(np.searchsorted(np.cumsum(pmf), rng.random(), side="right")),
                    dataset.k - 1)
            choices[t], props[t] = j, pmf[j]
            lines[1 + j] = f"{j}:{-rewards[i, j]:.10g}:{pmf[j]:.10g} {actions[j]}"
            workspace.learn(lines)
    finally:
        workspace.finish()
    got = rewards[order, choices]
    return RunResult(order=order, choices=choices, propensities=props,
                     quality=dataset.quality[order, choices], cost=dataset.cost[order, choices],
                     reward=got, regret=best[order] - got)


def run_vw_variant(dataset: ReplayDataset, variant: str, weights: Sequence[float],
                   seeds: Sequence[int], base: dict[str, Any],
                   interactions: str = VW_INTERACTIONS, max_tokens: int = VW_MAX_TOKENS,
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One VW variant over every seed and lambda; the method entry."""
    started = time.perf_counter()
    # VW sees what banditroute sees: the prompt and, where the dataset has one, the task
    # label (banditroute gets it as categorical context), as one more token interacted with
    # the model one-hot.
    tasks = dataset.tasks if dataset.tasks is not None else [""] * dataset.n
    shared = [f"shared |s {vw_task(t)}{vw_text(p, max_tokens)}"
              for p, t in zip(dataset.prompts, tasks, strict=True)]
    operating = float(weights[0])
    sweep_weights = sorted(set(float(w) for w in weights))
    pair = strong_weak(dataset)
    per_weight: dict[float, list[RunResult]] = {w: [] for w in sweep_weights}
    for seed in seeds:
        for weight in sweep_weights:
            run = run_vw(dataset, shared, vw_args(variant, seed, interactions), weight, seed)
            per_weight[weight].append(run)
            if progress is not None:
                progress(f"vw:{variant} seed={seed} lambda={weight:g}: "
                         f"accuracy={run.accuracy:.4f} cost={run.cost_per_query:.6f}")
    curve: dict[str, list[float]] = {}
    for s in range(len(seeds)):
        runs = [per_weight[w][s] for w in sweep_weights]
        seed_metrics = {"aiq": sweep_aiq([(r.cost_per_query, r.accuracy) for r in runs], base)}
        if pair is not None:
            seed_metrics.update(_two_model([float(r.shares(dataset.k)[pair[0]]) for r in runs],
                                      [r.accuracy for r in runs], base))
        for key, value in seed_metrics.items():
            curve.setdefault(key, []).append(value)
    sweep = [{"cost_weight": w,
              "accuracy": float(np.mean([r.accuracy for r in per_weight[w]])),
              "cost_per_query": float(np.mean([r.cost_per_query for r in per_weight[w]]))}
             for w in sweep_weights]
    metrics: dict[str, float] = {}
    for key, values in curve.items():
        metrics[key], metrics[f"{key}_std"] = _mean_std(values)
    runs = per_weight[operating]
    gaps = [late_hull_gap(dataset, r.order, r.choices) for r in runs]
    args = vw_args(variant, 0, interactions).replace("--random_seed 0", "--random_seed <seed>")
    return _method(f"vw:{variant}", "vowpalwabbit", runs, metrics, gaps, sweep, base, dataset,
                   per_seed_aiq=curve["aiq"], args=args,
                   seconds=round(time.perf_counter() - started, 2))


# --------------------------------------------------------------------------- the benchmark
def _git() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split("\n")
        return {"commit": commit, "modified": sorted(line[3:] for line in dirty if line)}
    except (OSError, subprocess.CalledProcessError):
        return {}


def run_peers(dataset: ReplayDataset, seeds: Sequence[int],
              vw_variants: Sequence[str] = tuple(VW_VARIANTS),
              cost_weights: Sequence[float] | None = None,
              interactions: str = VW_INTERACTIONS, max_tokens: int = VW_MAX_TOKENS,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The benchmark on a loaded dataset; the JSON-ready result."""
    if dataset.n == 0:
        raise ValueError(f"dataset: the {dataset.split} split of {dataset.name} is empty")
    for variant in vw_variants:
        vw_args(variant, 0)  # unknown names fail before anything runs
    started = time.perf_counter()
    weights = list(cost_weights) if cost_weights else default_cost_weights(dataset)
    report, methods = run_banditroute(dataset, weights, seeds, progress=progress)
    base = report["baselines"]
    vw_started = time.perf_counter()
    vw_methods = [run_vw_variant(dataset, v, weights, seeds, base, interactions, max_tokens,
                                 progress) for v in vw_variants]
    headline = methods[0]
    best_vw = max(vw_methods, key=lambda m: m["aiq"]) if vw_methods else None
    point_keys = ("accuracy", "cost_per_query", "accuracy_vs_best_single",
                  "cost_vs_best_single", "late_hull_gap")
    out: dict[str, Any] = {
        "benchmark": "peers",
        "dataset": dataset.name,
        "split": dataset.split,
        "n_prompts": dataset.n,
        "models": list(dataset.models),
        "seeds": list(seeds),
        "start": "cold",
        "cost_weight": float(weights[0]),
        "cost_weights": [float(w) for w in weights],
        "banditroute_policy": headline["policy"],
        "banditroute_cold_aiq": headline["aiq"],
        "banditroute_operating_point": {k: headline[k] for k in point_keys},
        "vw_best_variant": best_vw["name"] if best_vw else None,
        "vw_best_cold_aiq": best_vw["aiq"] if best_vw else None,
        "vw_best_operating_point": {k: best_vw[k] for k in point_keys} if best_vw else None,
        "zero_router_aiq": base["zero_router_aiq"],
        "oracle_aiq": base["oracle_aiq"],
        "best_single_model": base["best_single_model"],
        "best_single_accuracy": base["best_single_accuracy"],
        "best_single_cost_per_query": base["best_single_cost_per_query"],
        "max_cost": base["max_cost"],
        "methods": [*methods, *vw_methods],
        "settings": {
            "banditroute": {"policies": list(BANDITROUTE_POLICIES),
                            "feature_dim": BANDITROUTE_FEATURE_DIM,
                            "same_as": "banditroute replay --dataset D --split S --seeds N"},
            "vowpalwabbit": {"base": VW_BASE, "interactions": interactions or None,
                             "max_tokens": max_tokens, "variants": list(vw_variants),
                             "version": _vw_version() if vw_variants else None},
            "aiq": "per seed over the lambda sweep, max_cost = max(largest single-model "
                   "mean cost, largest point cost); mean over seeds",
            "late_hull_gap": "banditroute.service.replay.hull.late_hull_gap at the "
                             "operating lambda; mean over seeds",
        },
        "git": _git(),
        "seconds_banditroute": report["seconds"],
        "seconds_vw": round(time.perf_counter() - vw_started, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return out


def _vw_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("vowpalwabbit")
    except Exception:
        return None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="routerbench",
                        help="routerbench | routellm-mmlu | routellm-gsm8k | routellm-mtbench "
                             "| PATH to a generic .csv/.jsonl replay file")
    parser.add_argument("--split", default="test", help="train | test | all")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help="number of seeds (0..N-1)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding routerbench-subset/ and routellm/ (default: "
                             "$BANDITROUTE_DATA_ROOT or ../shared/data beside the repository)")
    parser.add_argument("--vw-variants", default=",".join(VW_VARIANTS),
                        help=f"comma-separated subset of {', '.join(VW_VARIANTS)} "
                             "(empty: banditroute only)")
    parser.add_argument("--vw-interactions", default=VW_INTERACTIONS,
                        help="VW -q namespaces (default sa: shared x action); empty: none")
    parser.add_argument("--vw-max-tokens", type=int, default=VW_MAX_TOKENS,
                        help="prompt tokens given to VW")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (the default; accepted for symmetry)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds: must be >= 1")
    variants = [v.strip() for v in args.vw_variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VW_VARIANTS]
    if unknown:
        parser.error(f"--vw-variants: unknown {', '.join(unknown)}; "
                     f"expected {', '.join(VW_VARIANTS)}")
    try:
        data = load_dataset(args.dataset, args.split, args.data_root or default_data_root())
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    result = run_peers(data, list(range(args.seeds)), variants,
                       interactions=args.vw_interactions, max_tokens=args.vw_max_tokens,
                       progress=progress)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return result


if __name__ == "__main__":
    main()
