"""Micro-benchmark of the learners: decisions/s and updates/s, features/s, cost predictions/s.

Run ``python benchmarks/learners.py``. Prints one flat JSON object and writes the same object
to ``benchmarks/results/learners.json``. Single core: BLAS threads are pinned to 1 before numpy
is imported. Rates are per CPU-second of this process (``time.process_time``, i.e. throughput of
one core even when other jobs share the machine), best of a few repeats, and River's own
``bandit.LinUCBDisjoint`` runs on the same data in the same process.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import river  # noqa: E402
from river import bandit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from banditroute.learners import CostModel, FeatureExtractor, dumps, loads, make_policy  # noqa: E402

K = 11
REPEATS = 10
RESULTS = Path(__file__).resolve().parent / "results" / "learners.json"


def best_rate(fn: Callable[[], int], repeats: int = REPEATS) -> float:
    """Best operations/s over ``repeats`` runs of ``fn`` (which returns its operation count)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.process_time()
        n = fn()
        best = max(best, n / max(time.process_time() - t0, 1e-9))
    return best


def contexts(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def trained_policy(algorithm: str, dim: int, warmup: np.ndarray) -> object:
    arms = [f"m{i}" for i in range(K)]
    policy = make_policy(algorithm, arms, dim, seed=0)
    for i, x in enumerate(warmup):
        policy.update(x, arms[i % K], float(np.tanh(x[i % dim])))
    return policy


def bench_policy(algorithm: str, dim: int, n: int = 1500) -> tuple[float, float]:
    arms = [f"m{i}" for i in range(K)]
    warmup = contexts(2000, dim, seed=1)
    xs = contexts(n, dim, seed=2)
    rewards = np.tanh(xs[:, 0])
    policy = trained_policy(algorithm, dim, warmup)

    def decide() -> int:
        select = policy.select  # type: ignore[attr-defined]
        for x in xs:
            select(x)
        return n

    def learn() -> int:
        p = trained_policy(algorithm, dim, warmup[:200])
        update = p.update  # type: ignore[attr-defined]
        t_arms = [arms[i % K] for i in range(n)]
        for x, a, r in zip(xs, t_arms, rewards.tolist(), strict=True):
            update(x, a, r)
        return n

    return best_rate(decide), best_rate(learn, repeats=5)


def bench_service_path(algorithm: str, dim: int = 64, n: int = 1500) -> float:
    """Decisions/s as the service calls select: explicit candidates and its own generator."""
    arms = [f"m{i}" for i in range(K)]
    policy = trained_policy(algorithm, dim, contexts(2000, dim, seed=1))
    xs = contexts(n, dim, seed=2)
    rng = np.random.default_rng(0)

    def decide() -> int:
        select = policy.select  # type: ignore[attr-defined]
        for x in xs:
            select(x, arms, rng=rng)
        return n

    return best_rate(decide)


def bench_grouped(algorithm: str, dim: int = 64, n: int = 1500,
                  groups: int = 50) -> tuple[float, float]:
    """Decisions/s and updates/s of requests with a group (categorical context), after a
    warm-up spread over ``groups`` groups: the batched per-arm scoring of learners/_groups.py."""
    arms = [f"m{i}" for i in range(K)]
    warmup = contexts(2000, dim, seed=1)
    xs = contexts(n, dim, seed=2)
    names = [f"task-{j}" for j in range(groups)]

    def trained(rows: np.ndarray) -> object:
        policy = make_policy(algorithm, arms, dim, seed=0)
        for i, x in enumerate(rows):
            policy.update(x, arms[i % K], float(np.tanh(x[i % dim])), group=names[i % groups])
        return policy

    policy = trained(warmup)

    def decide() -> int:
        select = policy.select  # type: ignore[attr-defined]
        for i, x in enumerate(xs):
            select(x, group=names[i % groups])
        return n

    def learn() -> int:
        p = trained(warmup[:200])
        update = p.update  # type: ignore[attr-defined]
        for i, x in enumerate(xs):
            update(x, arms[i % K], float(np.tanh(x[0])), group=names[i % groups])
        return n

    return best_rate(decide), best_rate(learn, repeats=5)


def bench_river_linucb(dim: int, n_warm: int = 300, n: int = 300) -> tuple[float, float]:
    names = [f"x{i}" for i in range(dim)]
    warm = [dict(zip(names, x.tolist(), strict=True)) for x in contexts(n_warm, dim, seed=1)]
    probe = [dict(zip(names, x.tolist(), strict=True)) for x in contexts(n, dim, seed=2)]
    arms = list(range(K))
    policy = bandit.LinUCBDisjoint(seed=0)

    def learn() -> int:
        for i, ctx in enumerate(warm):
            policy.update(arms[i % K], ctx, float(np.tanh(ctx[names[i % dim]])))
        return n_warm

    update_rate = best_rate(learn, repeats=1)

    def decide() -> int:
        for ctx in probe:
            policy.pull(arms, context=ctx)
        return n

    return best_rate(decide, repeats=3), update_rate


def prompts(n: int, length: int = 2000, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    sentence = (
        "the model router should answer quickly and cheaply while the quality of every answer "
        "stays high please explain why gradient descent converges for convex functions translate "
        "into French summarise this article return a list of numbers 12 345 6789 how what when"
    )
    words = sentence.split(" ")
    code = "def f(x):\n    return {k: v for k, v in x.items() if v > 0}\n"
    out = []
    for i in range(n):
        parts: list[str] = []
        while sum(map(len, parts)) < length:
            if i % 3 == 0 and rng.random() < 0.2:
                parts.append(code)
            else:
                parts.append(" ".join(rng.choice(words, size=12)) + ". ")
        if i % 5 == 0:
            parts.append(" 请翻译这段话？")
        out.append("".join(parts)[:length])
    return out


def bench_features(dim: int = 64) -> tuple[float, float]:
    fx = FeatureExtractor(dim=dim)
    texts = prompts(300)

    def run() -> int:
        for t in texts:
            fx.extract(t, {"max_tokens": 512.0}, {"tenant": "acme"})
        return len(texts)

    rate = best_rate(run)
    return rate, 1e6 / rate


def bench_cost_model(dim: int = 64) -> tuple[float, float, float]:
    cm = CostModel(dim)
    models = [f"m{i}" for i in range(K)]
    xs = np.abs(contexts(2000, dim, seed=3))
    for i, x in enumerate(xs):
        cm.learn(models[i % K], x, output_tokens=100.0 + 10 * x[0], latency_ms=500.0 + x[1])
    probe = xs[:1000]

    def predict() -> int:
        est = cm.estimate_cost_usd
        for x in probe:
            est("m3", x, 500, 1.0, 10.0)
        return len(probe)

    def route() -> int:
        many = cm.predict_output_tokens_many
        for x in probe:
            many(models, x)
        return len(probe)

    def learn() -> int:
        c = CostModel(dim)
        for i, x in enumerate(probe):
            c.learn(models[i % K], x, output_tokens=120.0, latency_ms=800.0)
        return len(probe)

    return best_rate(predict), best_rate(route), best_rate(learn, repeats=2)


def bench_state(dim: int = 64) -> dict[str, float]:
    policy = trained_policy("linucb", dim, contexts(500, dim, seed=1))
    data = dumps(policy)  # type: ignore[arg-type]
    dump_rate = best_rate(lambda: (dumps(policy), 1)[1] * 1)  # type: ignore[arg-type]
    load_rate = best_rate(lambda: (loads(data), 1)[1] * 1)
    arms = [f"m{i}" for i in range(K)]
    results: dict[str, float] = {}
    for regressor in ("linear", "hoeffding_tree"):
        river_policy = make_policy("river", arms, dim, seed=0, regressor=regressor)
        for i, x in enumerate(contexts(3000, dim, seed=4)):
            river_policy.update(x, arms[i % K], float(x[0] > 0) + 0.1 * x[1])
        t0 = time.process_time()
        blob = dumps(river_policy)
        t1 = time.process_time()
        loads(blob)
        t2 = time.process_time()
        results[f"river_{regressor}_k11_d64_3000_updates_state_bytes"] = float(len(blob))
        results[f"river_{regressor}_k11_d64_dumps_ms"] = 1e3 * (t1 - t0)
        results[f"river_{regressor}_k11_d64_loads_ms"] = 1e3 * (t2 - t1)
    return {
        **results,
        "linucb_k11_d64_state_bytes": float(len(data)),
        "linucb_k11_d64_dumps_ms": 1e3 / dump_rate,
        "linucb_k11_d64_loads_ms": 1e3 / load_rate,
    }


def main() -> dict[str, object]:
    results: dict[str, object] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "river": river.__version__,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "timer": "process_time",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "k": K,
    }
    for algorithm, key in (("linucb", "linucb"), ("thompson", "ts")):
        for dim in (64, 128):
            decisions, updates = bench_policy(algorithm, dim)
            results[f"{key}_k11_d{dim}_decisions_per_s"] = round(decisions)
            results[f"{key}_k11_d{dim}_updates_per_s"] = round(updates)
    for algorithm, key in (("linucb", "linucb"), ("thompson", "ts")):
        rate = bench_service_path(algorithm)
        results[f"{key}_k11_d64_decisions_with_candidates_and_rng_per_s"] = round(rate)
    for algorithm, key in (("linucb", "linucb"), ("thompson", "ts")):
        decisions, updates = bench_grouped(algorithm)
        results[f"{key}_k11_d64_grouped_decisions_per_s"] = round(decisions)
        results[f"{key}_k11_d64_grouped_updates_per_s"] = round(updates)
    for algorithm in ("epsilon_greedy", "uniform", "river"):
        decisions, updates = bench_policy(algorithm, 64, n=500 if algorithm == "river" else 1500)
        results[f"{algorithm}_k11_d64_decisions_per_s"] = round(decisions)
        results[f"{algorithm}_k11_d64_updates_per_s"] = round(updates)
    river_decisions, river_updates = bench_river_linucb(64)
    results["river_linucb_k11_d64_decisions_per_s"] = round(river_decisions)
    results["river_linucb_k11_d64_updates_per_s"] = round(river_updates)
    results["linucb_vs_river_speedup"] = round(
        float(results["linucb_k11_d64_decisions_per_s"]) / river_decisions, 1  # type: ignore[arg-type]
    )
    features, us = bench_features()
    results["features_per_s"] = round(features)
    results["features_us_per_2000_char_prompt"] = round(us, 1)
    predict, route, learn = bench_cost_model()
    results["cost_model_predicts_per_s"] = round(predict)
    results["cost_model_k11_routes_per_s"] = round(route)
    results["cost_model_learns_per_s"] = round(learn)
    results.update({k: round(v, 3) for k, v in bench_state().items()})
    return results


if __name__ == "__main__":
    out = main()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
