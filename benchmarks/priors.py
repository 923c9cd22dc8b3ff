"""Priors tried on validation and not shipped: against the cold lock-out, and for the context.

``--stage lockout``: the cold pass's worst failure is a lock-out, a good cheap model that
draws zeros in its first tries and is never tried again (docs/replay.md, "What was tried").
Two priors aimed at it, each a subclass of the shipped LinUCB defined here (not shipped):

* ``estimated-intercept``: the intercepts' prior precision estimated across the arms
  (empirical Bayes: the pooled within-arm variance of the rewards over the spread of the
  arms' mean rewards, in [1, 64], re-estimated at 32, 64, 128, ... and every 256 updates and
  applied exactly to every arm's ridge state), so that two early zeros move a good arm's mean
  less;
* ``shared-context``: each arm's context coefficients shrunk towards the arms' pulls-weighted
  mean coefficients instead of 0 (hybrid LinUCB's shared part), so that a rarely pulled arm
  inherits what the context does to every model's reward.

Each runs cold at the default operating lambda on five validation cuts (RouterBench,
MT-Bench and the reshaped pools ``no-mbpp``, ``no-gpt4``, ``subset-1`` of
``benchmarks/pool_variants.py``, written from the train split); the output has each one's
late hull gap per cut (mean and worst seed) and over the five.

``--stage evidence``: the per-coordinate context prior that maximises the marginal likelihood
of a full-information ridge of quality on the 64-d features (summed over the models; noise
variance profiled out), on each validation cut's fit half, over 4 to 4,096, next to the
validation measure at each prior (CPT(50%) on two-model sets, accuracy at 25 % of GPT-4's
cost as a fraction of GPT-4's on RouterBench): is the shipped ``4 * dim`` = 256 where the
evidence puts it?

Usage::

    python benchmarks/priors.py --stage lockout [--seeds 10]     # 30 s on 2 cores
    python benchmarks/priors.py --stage evidence                 # 5 s
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pool_variants
from bounds import FRACTIONS, GPT4, envelope_at
from replay import print_json, split_fit_validation, threshold_cpt

from banditroute.learners.linear import LinUCB
from banditroute.service.replay.baselines import strong_weak
from banditroute.service.replay.cli import default_cost_weights
from banditroute.service.replay.hull import late_hull_gap
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import default_featurizer, run_online

CUTS = ("routerbench", "routellm-mtbench", "pool:no-mbpp", "pool:no-gpt4", "pool:subset-1")
EVIDENCE_SETS = ("routellm-gsm8k", "routellm-mmlu", "routerbench", "routellm-mtbench")
PRIORS = (4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0)


class EstimatedIntercept(LinUCB):
    """LinUCB whose intercept prior precision is estimated across the arms (see the doc)."""

    def update(self, x: Any, arm: str, reward: Any, *, group: str | None = None) -> LinUCB:
        super().update(x, arm, reward, group=group)
        squares = self.__dict__.setdefault("_squares", np.zeros(len(self._counts)))
        squares[self._index[arm]] += float(reward) ** 2
        t = int(self._counts.sum())
        if t >= 32 and ((t & (t - 1)) == 0 or t % 256 == 0):
            prior = self._estimate(squares)
            ridge, d = self._ridge, self._ridge.p - 1
            if prior is not None and prior != ridge.ridge[d]:
                ridge.A[:, d, d] += prior - ridge.ridge[d]  # exactly as if learnt with it
                ridge.ridge[d] = prior
                ridge.recompute()
        return self

    def _estimate(self, squares: np.ndarray) -> float | None:
        n, sums = self._counts.astype(float), self._reward_sums
        several, seen = n > 1, n > 0
        if several.sum() < 3:
            return None
        within = squares - sums * sums / np.maximum(n, 1.0)
        sigma2 = max(float(within[several].sum()) / float((n[several] - 1.0).sum()), 1e-4)
        spread = sums[seen] / n[seen] - float(sums.sum() / n.sum())
        tau2 = float(np.mean(spread * spread - sigma2 / n[seen]))
        return 64.0 if tau2 <= sigma2 / 64.0 else min(max(sigma2 / tau2, 1.0), 64.0)


class SharedContext(LinUCB):
    """LinUCB whose context coefficients' prior is centred on the arms' pulls-weighted mean
    coefficients (the intercept's on the pool's mean reward, as shipped)."""

    def _means_and_widths(self, x: np.ndarray,
                          group: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        z = self._features(x)
        ridge, groups = self._ridge, self._groups
        n = ridge.n.astype(float)
        centre = np.zeros(ridge.p)
        if n.sum() > 0:
            centre[:-1] = (n[:, None] * ridge.theta[:, :-1]).sum(axis=0) / n.sum()
        centre[-1] = self._intercept_prior()
        pulled = ridge.ridge * centre  # the prior's term of A^-1 (b + P m)
        row = None if group is None else groups.rows.get(group)
        if row is None:
            means, widths = ridge.means_and_widths(z, 0.0)
            means += np.matmul(ridge.A_inv, pulled).dot(z)
            if group is not None and len(groups.rows) < groups.capacity:
                widths += 1.0 / groups.prior
            return means, widths
        a = groups.n[row] + groups.prior
        w = z - groups.sums[row] / a[:, None]
        u = np.matmul(ridge.A_inv, w[:, :, None])[:, :, 0]
        means = np.einsum("kp,kp->k", ridge.theta, w) + groups.rewards[row] / a + u.dot(pulled)
        widths = np.maximum(np.einsum("kp,kp->k", u, w) + 1.0 / a, 0.0)
        return means, widths


VARIANTS = {"shipped": LinUCB, "estimated-intercept": EstimatedIntercept,
            "shared-context": SharedContext}


def lockout(seeds: int, root: Path | None) -> dict[str, Any]:
    featurize = default_featurizer()
    rows: dict[str, dict[str, Any]] = {name: {} for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="banditroute-priors-") as tmp:
        pools = pool_variants.variants({"train": load_dataset("routerbench", "train", root)},
                                       Path(tmp), 2)
        for cut in CUTS:
            source = str(pools[cut[5:]]) if cut.startswith("pool:") else cut
            _, val = split_fit_validation(load_dataset(source, "train", root))
            features, weight = featurize(val.prompts), default_cost_weights(val)[0]
            for name, cls in VARIANTS.items():
                gaps = []
                for seed in range(seeds):
                    run = run_online(cls(val.models, features.shape[1], seed), val, features,
                                     weight, seed)
                    gaps.append(late_hull_gap(val, run.order, run.choices))
                rows[name][cut] = {"late_hull_gap": round(fmean(gaps), 4),
                                   "worst_seed": round(min(gaps), 4)}
            print(f"{cut}: done", file=sys.stderr, flush=True)
    return {name: {"cuts": cuts,
                   "mean_late_hull_gap": round(fmean(c["late_hull_gap"] for c in cuts.values()), 4),
                   "worst_seed": min(c["worst_seed"] for c in cuts.values())}
            for name, cuts in rows.items()}


def _design(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Standardised features capped to norm sqrt(dim), as LinUCB scales them, and the
    intercept last."""
    z = (x - mean) / sd
    norm2 = (z * z).sum(axis=1, keepdims=True)
    z *= np.sqrt(np.minimum(1.0, z.shape[1] / np.maximum(norm2, 1e-12)))
    return np.c_[z, np.ones(len(z))]


def _log_evidence(z: np.ndarray, rewards: np.ndarray, prior: float) -> float:
    """Log marginal likelihood (up to a constant) of a ridge per model with context prior
    ``prior`` and intercept prior 1, the noise variance profiled out per model."""
    precision = np.full(z.shape[1], prior)
    precision[-1] = 1.0
    gram = z.T @ z + np.diag(precision)
    logdet = float(np.linalg.slogdet(gram)[1])
    total = 0.0
    for y in rewards.T:
        b = z.T @ y
        rss = float(y @ y - b @ np.linalg.solve(gram, b))
        total += (-0.5 * len(y) * math.log(rss / len(y)) - 0.5 * logdet
                  + 0.5 * float(np.log(precision).sum()))
    return total


def evidence(root: Path | None) -> dict[str, Any]:
    featurize = default_featurizer()
    out: dict[str, Any] = {}
    for name in EVIDENCE_SETS:
        fit, val = split_fit_validation(load_dataset(name, "train", root))
        xf = featurize(fit.prompts)
        mean, sd = xf.mean(axis=0), xf.std(axis=0) + 1e-9
        zf, zv = _design(xf, mean, sd), _design(featurize(val.prompts), mean, sd)
        log_ev = {p: _log_evidence(zf, fit.quality, p) for p in PRIORS}
        pair = strong_weak(val)
        measure = {}
        for p in PRIORS:
            precision = np.full(zf.shape[1], p)
            precision[-1] = 1.0
            gram = zf.T @ zf + np.diag(precision)
            if pair is not None:
                strong, weak = pair
                coef = np.linalg.solve(gram, zf.T @ fit.quality)
                measure[p] = threshold_cpt(val, strong, weak, zv @ (coef[:, strong]
                                                                   - coef[:, weak]))
                continue
            g, rows = val.models.index(GPT4), np.arange(val.n)
            c_val, q_val = float(val.cost[:, g].mean()), float(val.quality[:, g].mean())
            c_fit = float(fit.cost[:, g].mean())
            points = []
            for f in FRACTIONS:
                coef = np.linalg.solve(gram, zf.T @ (fit.quality - f * fit.cost / c_fit))
                choice = (zv @ coef).argmax(axis=1)
                points.append((float(val.cost[rows, choice].mean()) / c_val,
                               float(val.quality[rows, choice].mean()) / q_val))
            measure[p] = envelope_at(points, 0.25)
        out[name] = {"measure": "cpt50" if pair is not None else "accuracy_at_25pct_of_gpt4",
                     "evidence_best_prior": max(log_ev, key=lambda p: log_ev[p]),
                     "by_prior": {f"{p:g}": {"log_evidence": round(log_ev[p], 1),
                                             "measure": round(measure[p], 4)} for p in PRIORS}}
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("lockout", "evidence"), required=True)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    report: dict[str, Any] = {"benchmark": "priors", "stage": args.stage, "split": "validation"}
    if args.stage == "lockout":
        report |= {"seeds": args.seeds, "variants": lockout(args.seeds, root)}
    else:
        report["datasets"] = evidence(root)
    print_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
