"""Cost of experiments on the Route path: assignment (hash + bisect) and shadow scoring.

Prints one JSON object: microseconds per ``ExperimentCache.resolve`` (a route with a running
experiment and without), per ``bucket_of`` alone, and per shadow policy scored
(``score_shadows`` with one LinUCB shadow, d=64, 10 models).

    python benchmarks/experiments.py
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# Scripts here run with benchmarks/ first on sys.path, where benchmarks/learners.py would
# shadow the learners package: put the repository root first.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from banditroute.learners.registry import make_policy
from banditroute.service.core.assignment import Assignment, PolicyKey, RouteEntry
from banditroute.service.experiments.assignment import bucket_of
from banditroute.service.experiments.shadow import score_shadows
from tests.helpers import experiment_cache


def _us_per_call(fn: Callable[[int], object], n: int) -> float:
    for i in range(min(n, 1000)):
        fn(i)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def main() -> None:
    cache = experiment_cache(
        "with",
        {"a": (50, PolicyKey("p", 1)), "b": (30, PolicyKey("q", 1)), "c": (20, PolicyKey("r", 1))},
    )
    with_exp = RouteEntry("", "with", PolicyKey("p", 1), ())
    without = RouteEntry("", "without", PolicyKey("p", 1), ())
    units = [f"user-{i}" for i in range(10_000)]
    arms = [f"m{i}" for i in range(10)]
    rng = np.random.default_rng(0)
    shadow = make_policy("linucb", arms, dim=64, seed=0)
    for _ in range(500):
        x = rng.normal(size=64)
        shadow.update(x, arms[int(rng.integers(10))], float(rng.random()))
    xs = rng.normal(size=(256, 64))
    assignment = Assignment(PolicyKey("p", 1), "e", "a", 1, (PolicyKey("s", 1),))
    out = {
        "resolve_with_experiment_us": _us_per_call(
            lambda i: cache.resolve("", with_exp, units[i % 10_000]), 100_000
        ),
        "resolve_without_experiment_us": _us_per_call(
            lambda i: cache.resolve("", without, units[i % 10_000]), 100_000
        ),
        "bucket_of_us": _us_per_call(lambda i: bucket_of("e", units[i % 10_000]), 100_000),
        "shadow_linucb_d64_k10_us": _us_per_call(
            lambda i: score_shadows(assignment, lambda k: shadow, xs[i % 256], arms, rng), 5_000
        ),
    }
    print(json.dumps({k: round(v, 2) for k, v in out.items()}))


if __name__ == "__main__":
    main()
