"""Budgets in money (issue #12): budget-paced replay against fixed-lambda replay.

For a dataset's test split, warm-started on its train split (``--warm-start`` in
``banditroute replay``), one policy runs

* paced by :class:`banditroute.learners.pacing.BudgetPacer` at budgets per request given as
  fractions of GPT-4's mean cost per query (the policy learns quality; the pacer prices
  cost), and
* with fixed cost weights lambda (the policy learns ``clip(quality - lambda * cost)``),

over several seeds. Each budget run is compared with the fixed-lambda curve at the same
cost (the upper envelope of the fixed-lambda points, linearly interpolated). Prints one JSON
object and writes ``benchmarks/results/budgets_<dataset>.{json,png}``.

    python benchmarks/budgets.py --dataset routerbench --headline 0.3
    python benchmarks/budgets.py --dataset routellm-gsm8k --headline half
    python benchmarks/budgets.py --dataset routerbench --validation --step 0.003  # choosing
    python benchmarks/budgets.py --dataset routerbench --validation --costs mean  # ablation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from replay import history_and_pass  # benchmarks/replay.py: this script's folder

from banditroute.learners.pacing import BudgetPacer
from banditroute.service.replay.cost_estimates import CostEstimates
from banditroute.service.replay.runner import (
    PolicySpec,
    default_featurizer,
    estimated_costs,
    run_budgeted,
    run_online,
    warm_start,
)

RESULTS = Path(__file__).resolve().parent / "results"
GPT4 = "gpt-4-1106-preview"


def _envelope_mix(points: list[tuple[float, float]], cost: float) -> dict[int, float]:
    """Which fixed-lambda points the upper envelope mixes at ``cost``, and how much of each
    (linear between points; beyond the ends the end point): indices into ``points``."""
    best: list[int] = []
    for i in sorted(range(len(points)), key=lambda i: points[i]):
        if not best or points[i][1] > points[best[-1]][1]:
            best.append(i)
    xs = [points[i][0] for i in best]
    if cost <= xs[0]:
        return {best[0]: 1.0}
    if cost >= xs[-1]:
        return {best[-1]: 1.0}
    k = int(np.searchsorted(xs, cost))  # xs[k - 1] < cost <= xs[k]
    share = (cost - xs[k - 1]) / (xs[k] - xs[k - 1])
    return {best[k - 1]: 1.0 - share, best[k]: share}


def _envelope_at(points: list[tuple[float, float]], cost: float) -> float:
    """The best accuracy the fixed-lambda points reach at ``cost`` (upper envelope, linear
    between points; beyond the ends the end value)."""
    return float(sum(w * points[i][1] for i, w in _envelope_mix(points, cost).items()))


def _by_prompt(order: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """A pass's quality per prompt, in the split's order instead of the pass's."""
    out = np.empty(order.size)
    out[order] = quality
    return out


def _joint_bootstrap(paced: np.ndarray, fixed: dict[int, tuple[float, np.ndarray]],
                     draws: int = 2000) -> list[float]:
    """95 % interval of paced minus fixed accuracy when the seeds *and* the prompts are
    resampled. ``paced``: quality per seed and prompt, shape ``(seeds, prompts)``;
    ``fixed``: the envelope's mix at the paced cost, each point's weight and the same
    array. The seeds share the split's prompts, so an interval over seeds alone does not see
    how much a difference owes to which prompts the split holds; this one does (the
    envelope's points and mix are held fixed)."""
    rng = np.random.default_rng(0)
    n_seeds, n = paced.shape
    diffs = []
    for _ in range(draws):
        cells = np.ix_(rng.integers(n_seeds, size=n_seeds), rng.integers(n, size=n))
        diffs.append(float(paced[cells].mean())
                     - sum(w * float(f[cells].mean()) for w, f in fixed.values()))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return [float(lo), float(hi)]


def _seed_bootstrap(fixed_seeds: list[np.ndarray], paced_seeds: np.ndarray,
                    draws: int = 2000) -> list[float]:
    """95 % interval of paced minus fixed, resampling the seeds (the same draw for both
    sides, whose seeds share their data order): each draw recomputes the fixed-lambda
    envelope and the paced point from the drawn seeds' (cost, accuracy) rows."""
    rng = np.random.default_rng(0)
    n = len(paced_seeds)
    diffs = []
    for _ in range(draws):
        pick = rng.integers(n, size=n)
        points = [(float(f[pick, 0].mean()), float(f[pick, 1].mean())) for f in fixed_seeds]
        cost, acc = paced_seeds[pick].mean(axis=0)
        diffs.append(float(acc) - _envelope_at(points, float(cost)))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return [float(lo), float(hi)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="routerbench")
    parser.add_argument("--policy", default="linucb")
    parser.add_argument("--paced-policy", default=None,
                        help="a different policy spec for the paced runs only (an ablation; "
                             "default: --policy)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--step", type=float, default=0.02,
                        help="the pacer's initial step (BudgetPacer)")
    parser.add_argument("--step-min", type=float, default=0.002,
                        help="where the step's decay stops (= --step: a constant step)")
    parser.add_argument("--step-decay", type=float, default=100.0,
                        help="requests over which the step's square halves (BudgetPacer)")
    parser.add_argument("--headline", default="0.3",
                        help="headline budget: a fraction of GPT-4's cost, or 'half' (the cost "
                             "of sending half the calls to GPT-4 and half to the other model)")
    parser.add_argument("--fractions", default="0.1,0.2,0.3,0.4,0.5,0.6,0.8")
    parser.add_argument("--costs", choices=("prompt", "mean"), default="prompt",
                        help="the pacer's cost estimate: per prompt (CostEstimates, fitted on "
                             "the train split and updated online) or each model's mean cost")
    parser.add_argument("--validation", action="store_true",
                        help="warm-start on the fit half of the train split and run on its "
                             "validation half (for choosing settings; the test split is not read)")
    parser.add_argument("--no-task-context", dest="task_context", action="store_false",
                        help="do not pass the task labels as categorical context (the rows "
                             "measured before group effects)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write <out>.json and <out>.png instead of "
                             "benchmarks/results/budgets_<dataset>[_...]")
    args = parser.parse_args()

    train, test = history_and_pass(args.dataset, args.validation)
    featurize = default_featurizer(64)
    feats, hist_feats = featurize(test.prompts), featurize(train.prompts)
    spec = PolicySpec.parse(args.policy)
    paced_spec = PolicySpec.parse(args.paced_policy) if args.paced_policy else spec
    g = test.models.index(GPT4)
    gpt4_cost = float(test.mean_cost()[g])
    gpt4_acc = float(test.mean_quality()[g])
    costs = estimated_costs(train, test)
    if args.headline == "half":
        other = min(costs, key=costs.__getitem__)
        headline = 0.5 * (float(test.mean_cost()[g])
                          + float(test.mean_cost()[test.models.index(other)]))
    else:
        headline = float(args.headline) * gpt4_cost
    budgets = sorted({round(float(f) * gpt4_cost, 9) for f in args.fractions.split(",")}
                     | {round(headline, 9)})
    seeds = list(range(args.seeds))

    def paced(budget: float, seed: int) -> dict[str, Any]:
        policy = paced_spec.build(test.models, feats.shape[1], seed)
        warm_start(policy, train, hist_feats, 0.0, seed, task_context=args.task_context)
        pacer = BudgetPacer(budget_per_request_usd=budget, step=args.step,
                            step_min=args.step_min, step_decay=args.step_decay)
        estimates: dict[str, float] | CostEstimates = costs
        if args.costs == "prompt":
            estimates = CostEstimates(costs, feats.shape[1])
            estimates.fit(hist_feats, train.cost, train.models)
        run = run_budgeted(policy, test, feats, pacer, estimates, seed,
                           history=train, history_features=hist_feats,
                           task_context=args.task_context)
        return {"accuracy": run.accuracy, "cost": run.cost_per_query,
                "per_prompt": _by_prompt(run.order, run.quality),
                "windows": run.spend_windows(5), "final_lambda": pacer.lam,
                "paced_share": float(run.paced.mean()) if run.paced is not None else 0.0}

    def fixed(weight: float, seed: int) -> dict[str, Any]:
        policy = spec.build(test.models, feats.shape[1], seed)
        warm_start(policy, train, hist_feats, weight, seed, task_context=args.task_context)
        run = run_online(policy, test, feats, weight, seed, task_context=args.task_context)
        return {"accuracy": run.accuracy, "cost": run.cost_per_query,
                "per_prompt": _by_prompt(run.order, run.quality)}

    def per_seed_and_prompt(runs: list[dict[str, Any]]) -> np.ndarray:
        return np.array([r["per_prompt"] for r in runs])

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    scale = 1.0 / gpt4_cost
    fixed_rows = []
    fixed_seeds = []  # per lambda: the seeds' (cost, accuracy)
    fixed_prompts = []  # per lambda: each seed's accuracy on each prompt
    for f in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0):
        runs = [fixed(f * scale, s) for s in seeds]
        fixed_rows.append({"cost_weight": f * scale, "accuracy": mean(runs, "accuracy"),
                           "cost": mean(runs, "cost")})
        fixed_seeds.append(np.array([(r["cost"], r["accuracy"]) for r in runs]))
        fixed_prompts.append(per_seed_and_prompt(runs))
    points = [(r["cost"], r["accuracy"]) for r in fixed_rows]
    budget_rows = []
    for b in budgets:
        runs = [paced(b, s) for s in seeds]
        acc, cost = mean(runs, "accuracy"), mean(runs, "cost")
        fixed_acc = _envelope_at(points, cost)
        envelope = {i: (w, fixed_prompts[i]) for i, w in _envelope_mix(points, cost).items()}
        paced_seeds = np.array([(r["cost"], r["accuracy"]) for r in runs])
        budget_rows.append({
            "accuracy_minus_fixed_ci95": _seed_bootstrap(fixed_seeds, paced_seeds),
            "accuracy_minus_fixed_seeds_and_prompts_ci95": _joint_bootstrap(
                per_seed_and_prompt(runs), envelope),
            "budget_per_request": b, "budget_fraction_of_gpt4": b / gpt4_cost,
            "accuracy": acc, "cost": cost, "cost_over_budget": cost / b,
            "max_seed_cost_over_budget": max(r["cost"] / b for r in runs),
            "min_seed_cost_over_budget": min(r["cost"] / b for r in runs),
            "fixed_lambda_accuracy_at_same_cost": fixed_acc,
            "accuracy_minus_fixed": acc - fixed_acc,
            "windows_cost_over_budget": [float(np.mean([r["windows"][w] for r in runs])) / b
                                         for w in range(5)],
            "final_lambda": mean(runs, "final_lambda"), "paced_share": mean(runs, "paced_share"),
        })
    head = min(budget_rows, key=lambda r: abs(r["budget_per_request"] - headline))
    report = {
        "dataset": test.name, "split": test.split, "n_prompts": test.n, "policy": spec.label,
        "paced_policy": args.paced_policy or args.policy,
        "warm_start": True, "seeds": seeds, "step": args.step, "step_min": args.step_min,
        "step_decay": args.step_decay,
        "costs": args.costs,
        "gpt4_cost_per_query": gpt4_cost, "gpt4_accuracy": gpt4_acc,
        "headline": {
            "budget_per_request": headline, "cost": head["cost"],
            "cost_over_budget": head["cost_over_budget"],
            "cost_within_5pct": abs(head["cost_over_budget"] - 1.0) <= 0.05,
            "accuracy": head["accuracy"], "accuracy_over_gpt4": head["accuracy"] / gpt4_acc,
            "accuracy_at_least_95pct_gpt4": head["accuracy"] >= 0.95 * gpt4_acc,
        },
        "paced_at_least_fixed_everywhere": all(r["accuracy_minus_fixed"] >= 0
                                               for r in budget_rows),
        "budgets": budget_rows, "fixed_lambda": fixed_rows,
    }
    stem = (f"budgets_{args.dataset}" + ("_validation" if args.validation else "")
            + ("_mean_costs" if args.costs == "mean" else "")
            + (f"_{args.seeds}seeds" if args.seeds != 3 else "")
            + ("" if args.task_context else "_no_task_context"))
    out = args.out or RESULTS / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, out.with_suffix(".png"))
    print(json.dumps(report))


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fixed = sorted(report["fixed_lambda"], key=lambda r: r["cost"])
    ax.plot([r["cost"] for r in fixed], [r["accuracy"] for r in fixed], "o-",
            label="fixed cost weight lambda")
    paced = report["budgets"]
    ax.plot([r["cost"] for r in paced], [r["accuracy"] for r in paced], "s-",
            label="budget-paced (BudgetPacer)")
    for r in paced:
        ax.axvline(r["budget_per_request"], color="grey", lw=0.4, alpha=0.5)
    ax.axhline(report["gpt4_accuracy"], color="black", ls="--", lw=0.8, label="GPT-4")
    ax.set_xlabel("mean cost per query (USD)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{report['dataset']} test, {report['policy']}, warm start")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
