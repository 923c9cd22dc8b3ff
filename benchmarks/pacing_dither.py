"""Where budget pacing loses to a fixed cost weight on a two-model pool (issue #12).

``benchmarks/budgets.py`` finds paced runs below the fixed-weight curve at low budgets on
RouteLLM's GSM8K test split. This script takes the policy apart from the controller. For
each budget (a fraction of the dear model's mean cost per query) and seed, LinUCB is
warm-started on the train split as ``banditroute replay --warm-start`` does, and then:

* its scores before the pass rank the test prompts by predicted gain of the dear model over
  the cheap one (the *static ranking*);
* the paced pass runs as in ``budgets.py`` (``paced``), and once more with the policy frozen
  after the warm start (``frozen``: only the controller moves);
* the static ranking's exact top-k at the paced pass's share of dear calls (``top_k``) is
  what a constant cost weight with the frozen scores would reach at that spend.

It reports each one's accuracy, the realised gain per dear call (dear minus cheap quality on
the prompts sent to the dear model), the mean static-rank percentile of those prompts (0 is
the most promising) and how much the cost weight moved during the pass (its standard
deviation over its mean). Also the static ranking's top-k accuracy at shares of dear calls
from 5 to 50 %, and the realised gain per prompt by decile of predicted gain (means over
the seeds). Prints one JSON object; ``--out`` also writes it.

    python benchmarks/pacing_dither.py --dataset routellm-gsm8k --seeds 10
    python benchmarks/pacing_dither.py --dataset routellm-gsm8k --seeds 10 --validation
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
    warm_start,
)


class _Frozen:
    """A policy that chooses as the wrapped one does and learns nothing."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def select(self, *args: Any, **kwargs: Any) -> Any:
        return self.policy.select(*args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _predicted_gain(policy: Any, test: Any, feats: np.ndarray, seed: int, dear: int,
                    cheap: int) -> np.ndarray:
    """Each test prompt's predicted gain of the dear model over the cheap one: ``policy``'s
    scores before the pass."""
    rng = np.random.default_rng([seed, 7])
    scores = [policy.select(x, rng=rng).scores for x in feats]
    return np.array([s[test.models[dear]] - s[test.models[cheap]] for s in scores])


def _prompt_interval(per_prompt: np.ndarray, draws: int = 2000) -> list[float]:
    """95 % interval of ``per_prompt``'s mean when the prompts are resampled: how much a
    difference in accuracy between two routings of the same prompts owes to which prompts
    the cut holds (the seeds share them, so an interval over seeds does not see it)."""
    rng = np.random.default_rng(0)
    n = per_prompt.size
    means = [float(per_prompt[rng.integers(n, size=n)].mean()) for _ in range(draws)]
    return [round(float(v), 4) for v in np.percentile(means, [2.5, 97.5])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="routellm-gsm8k",
                        help="a two-model dataset (the gain is dear minus cheap)")
    parser.add_argument("--policy", default="linucb")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--fractions", default="0.1,0.2,0.3,0.5")
    parser.add_argument("--validation", action="store_true",
                        help="warm-start on the fit half of the train split and run on its "
                             "validation half (the test split is not read)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    train, test = history_and_pass(args.dataset, args.validation)
    if len(test.models) != 2:
        raise SystemExit(f"{args.dataset}: needs exactly two models, has {len(test.models)}")
    mean_cost = test.mean_cost()
    dear, cheap = int(mean_cost.argmax()), int(mean_cost.argmin())
    gain = test.quality[:, dear] - test.quality[:, cheap]
    featurize = default_featurizer(64)
    feats, hist_feats = featurize(test.prompts), featurize(train.prompts)
    spec = PolicySpec.parse(args.policy)
    prices = estimated_costs(train, test)
    shares = np.round(np.arange(0.05, 0.55, 0.05), 2)

    def warm(seed: int) -> Any:
        policy = spec.build(test.models, feats.shape[1], seed)
        return warm_start(policy, train, hist_feats, 0.0, seed)

    predicted = [_predicted_gain(warm(seed), test, feats, seed, dear, cheap)
                 for seed in range(args.seeds)]
    curve, deciles = [], []
    for seed in range(args.seeds):  # the static ranking alone: its top-k curve and deciles
        ranked = np.argsort(-predicted[seed])
        curve.append([(test.quality[:, cheap].sum() + gain[ranked[:round(k * test.n)]].sum())
                      / test.n for k in shares])
        deciles.append([gain[part].mean() for part in np.array_split(ranked, 10)])
    rows = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        per_seed: dict[str, list[float]] = {}
        # per prompt, over the seeds: how often each pass sent it to the dear model
        sent_share = {m: np.zeros(test.n) for m in ("paced", "frozen", "top_k")}

        def add(key: str, value: float, per_seed: dict[str, list[float]] = per_seed) -> None:
            per_seed.setdefault(key, []).append(float(value))

        for seed in range(args.seeds):
            for mode in ("paced", "frozen"):
                policy = warm(seed)
                rank = np.argsort(np.argsort(-predicted[seed])) / test.n
                estimates = CostEstimates(prices, feats.shape[1])
                estimates.fit(hist_feats, train.cost, train.models)
                pacer = BudgetPacer(budget_per_request_usd=fraction * float(mean_cost[dear]))
                run = run_budgeted(policy if mode == "paced" else _Frozen(policy), test, feats,
                                   pacer, estimates, seed, history=train,
                                   history_features=hist_feats)
                sent = run.order[run.choices == dear]
                sent_share[mode][sent] += 1.0 / args.seeds
                add(f"{mode}_accuracy", run.accuracy)
                add(f"{mode}_gain_per_dear_call", gain[sent].mean() if sent.size else 0.0)
                add(f"{mode}_rank_percentile", rank[sent].mean() if sent.size else 0.0)
                assert run.cost_weights is not None
                add(f"{mode}_cost_weight_sd_over_mean",
                    run.cost_weights.std() / max(run.cost_weights.mean(), 1e-12))
                if mode == "paced":
                    add("dear_share", sent.size / test.n)
                    top = np.argsort(-predicted[seed])[:sent.size]
                    sent_share["top_k"][top] += 1.0 / args.seeds
                    add("top_k_accuracy", (test.quality[:, cheap].sum() + gain[top].sum())
                        / test.n)
                    add("top_k_gain_per_dear_call", gain[top].mean() if top.size else 0.0)
                    add("top_k_rank_percentile", rank[top].mean() if top.size else 0.0)
        row: dict[str, Any] = {"budget_fraction_of_dear": fraction}
        row.update({key: round(float(np.mean(v)), 4) for key, v in per_seed.items()})
        row["paced_minus_top_k"] = round(row["paced_accuracy"] - row["top_k_accuracy"], 4)
        row["frozen_minus_top_k"] = round(row["frozen_accuracy"] - row["top_k_accuracy"], 4)
        for mode in ("paced", "frozen"):
            row[f"{mode}_minus_top_k_prompt_ci95"] = _prompt_interval(
                (sent_share[mode] - sent_share["top_k"]) * gain)
        rows.append(row)
    report = {"benchmark": "pacing_dither", "dataset": test.name, "split": test.split,
              "n_prompts": test.n, "policy": spec.label, "seeds": args.seeds,
              "dear_model": test.models[dear],
              "top_k_accuracy_by_share": dict(zip((str(k) for k in shares),
                                                  np.round(np.mean(curve, axis=0), 4).tolist(),
                                                  strict=True)),
              "gain_by_predicted_decile": np.round(np.mean(deciles, axis=0), 3).tolist(),
              "budgets": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
