"""Baselines computed on the same prompts as the policies: single models, random, oracle,
a cost-threshold sweep and RouterBench's zero router.

* single model: always the same model.
* random: a uniformly random model per prompt (its expectation, the mean over models).
* oracle: per prompt, the best ``quality - cost_weight * cost`` (ties to the cheaper);
  at ``cost_weight = 0`` this is "the cheapest model that answers correctly".
* cost-threshold sweep: for each threshold (each model's mean cost), always the model
  with the best mean quality among those with mean cost <= threshold. Means come from
  the ``reference`` data (the train split when there is one; otherwise the evaluated
  data itself, which flatters this baseline).
* zero router (RouterBench): random mixtures of single models, i.e. the non-decreasing
  convex hull of the single-model points; its AIQ is the bar a router must beat.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from banditroute.learners.metrics import aiq, convex_hull, oracle_point
from banditroute.service.replay.dataset import ReplayDataset

__all__ = ["baseline_report", "strong_weak"]


def strong_weak(dataset: ReplayDataset) -> tuple[int, int] | None:
    """Column indices ``(strong, weak)`` for two-model datasets, else None.

    The strong model is ``notes["strong_model"]`` when given, else the better one.
    """
    if dataset.k != 2:
        return None
    strong_name = dataset.notes.get("strong_model")
    if isinstance(strong_name, str) and strong_name in dataset.models:
        strong = dataset.models.index(strong_name)
    else:
        strong = int(np.argmax(dataset.mean_quality()))
    return strong, 1 - strong


def baseline_report(dataset: ReplayDataset, cost_weight: float,
                    reference: ReplayDataset | None = None) -> dict[str, Any]:
    """All baselines for ``dataset`` as a JSON-ready dict.

    Examples
    --------
    >>> ds = ReplayDataset("toy", ["a", "b"], ["cheap", "dear"],
    ...                    np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[1.0, 3.0], [1.0, 3.0]]))
    >>> b = baseline_report(ds, cost_weight=0.0)
    >>> b["best_single_model"], b["oracle_accuracy"], b["oracle_cost_per_query"]
    ('dear', 1.0, 2.0)
    >>> b["random"]
    {'accuracy': 0.75, 'cost_per_query': 2.0}
    """
    quality = dataset.mean_quality()
    cost = dataset.mean_cost()
    singles = [
        {"model": m, "accuracy": float(q), "cost_per_query": float(c)}
        for m, q, c in zip(dataset.models, quality, cost, strict=True)
    ]
    best = int(np.lexsort((cost, -quality))[0])  # best quality, then cheaper
    oracle_q, oracle_c = oracle_point(dataset.quality, dataset.cost, 0.0)
    oracle_lq, oracle_lc = oracle_point(dataset.quality, dataset.cost, cost_weight)
    ref = reference if reference is not None else dataset
    ref_q, ref_c = ref.mean_quality(), ref.mean_cost()
    sweep: list[dict[str, Any]] = []
    for threshold in sorted(set(ref_c.tolist())):
        allowed = np.flatnonzero(ref_c <= threshold + 1e-15)
        pick = int(allowed[np.argmax(ref_q[allowed])])
        sweep.append({
            "threshold": float(threshold),
            "model": dataset.models[pick],
            "accuracy": float(quality[pick]),
            "cost_per_query": float(cost[pick]),
        })
    max_cost = float(cost.max())
    hull = convex_hull(cost, quality)
    out: dict[str, Any] = {
        "single_models": singles,
        "best_single_model": dataset.models[best],
        "best_single_accuracy": float(quality[best]),
        "best_single_cost_per_query": float(cost[best]),
        "random": {"accuracy": float(quality.mean()), "cost_per_query": float(cost.mean())},
        "oracle_accuracy": oracle_q,
        "oracle_cost_per_query": oracle_c,
        "oracle_at_cost_weight": {"accuracy": oracle_lq, "cost_per_query": oracle_lc,
                                  "cost_weight": float(cost_weight)},
        "cost_threshold_sweep": sweep,
        "cost_threshold_reference": "train split" if reference is not None else "same data",
        "cost_threshold_aiq": aiq([p["cost_per_query"] for p in sweep],
                                  [p["accuracy"] for p in sweep], max_cost=max_cost),
        "zero_router_hull": hull.tolist(),
        "zero_router_aiq": aiq(cost, quality, max_cost=max_cost),
        "oracle_aiq": aiq([oracle_c, max_cost], [oracle_q, oracle_q], max_cost=max_cost),
        "max_cost": max_cost,
    }
    pair = strong_weak(dataset)
    if pair is not None:
        strong, weak = pair
        out["strong_model"] = dataset.models[strong]
        out["weak_model"] = dataset.models[weak]
        out["strong_accuracy"] = float(quality[strong])
        out["weak_accuracy"] = float(quality[weak])
        out["random_apgr"] = 0.5
        out["random_cpt50"] = 0.5
        out["random_cpt80"] = 0.8
    return out
