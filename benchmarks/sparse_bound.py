"""Where MMLU's routing signal is: the 64-d features against a 65,536-d sparse bag of words.

RouteLLM's MMLU has 57 subjects, and which model is right depends mostly on the subject: a
static router that knows each subject's accuracy gap reaches CPT(50%) of about 28 %. The
policies' 64-d features (16 dense signals, 48 signed-hashed slots of words and character
trigrams) cannot tell 57 subjects apart, so a full-information ridge on them stops at about
35 % on the test split. This script measures, with full information (every model's quality
known for every fit prompt), what each representation can reach:

* ``task``: each prompt's task label, the gap learnt per task on the fit part (a bound that
  needs labels the router does not get);
* ``hashed64``: ridge per model on banditroute's 64-d features (standardised, intercept
  prior 1, context prior 64 per coordinate; what LinUCB's mean can learn);
* ``sparse``: kernel ridge on unigrams and bigrams hashed into 2^16 slots, one-hot, rows
  L2-normalised (linear kernel; ``lam`` the ridge), fitted on the 64-d ridge's residuals;
* ``sparse_diagonal``: the same sparse space with a per-slot (diagonal) ridge, the only
  version that updates online in O(tokens) without a 2^16-square matrix;
* ``dense512``: the same grams hashed into only 512 slots, ridge on the residuals (what a
  wider dense feature vector could carry).
* ``hashed64_task_context`` and ``hashed64_task_onehot`` (datasets with task labels): the
  64-d ridge when the router is also given each prompt's task, as the caller's categorical
  context (what ``categorical_context`` does today: the value signed-hashed into the 8
  categorical slots of the 64-d vector) or one-hot next to the 64-d features (one slot per
  value, the same prior).

Two-model datasets report CPT(50%) (lower is better); others the accuracy at ``--at`` of the
strong model's cost (upper envelope over a cost-weight sweep, as ``bounds.py``). ``--split
validation`` fits on the fit half of the train split and scores its validation half (the
test split is never read); ``--split test`` fits on the whole train split and scores test.

Usage::

    python benchmarks/sparse_bound.py [--datasets routellm-mmlu,routellm-gsm8k,routerbench]
        [--split validation|test|halves] [--halves 12] [--fit-share 0.5] [--lams 1,3,10]
        [--out benchmarks/results/sparse_bound_validation.json]

``--split halves`` repeats the validation measurement on ``--halves`` random 50/50 cuts of
the train split and reports each representation's mean, sd and paired difference from
``hashed64``: how much of one cut's difference is that cut's luck.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bounds import GPT4, envelope_at
from replay import print_json, split_fit_validation, standardized_design, threshold_cpt

from banditroute.learners.features import FeatureExtractor
from banditroute.service.replay.baselines import strong_weak
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import default_featurizer

BITS = 16
_TOKEN = re.compile(r"[a-z0-9]+")
Predict = Callable[[np.ndarray], np.ndarray]  # fit-part targets (n_fit, k) -> (n_eval, k)


def bag_of_words(prompts: Sequence[str], bits: int = BITS) -> sparse.csr_matrix:
    """Unigrams and bigrams, hashed (CRC-32) into ``2**bits`` one-hot slots; rows norm 1."""
    rows: list[int] = []
    cols: list[int] = []
    for i, prompt in enumerate(prompts):
        words = _TOKEN.findall(prompt.lower())
        grams = set(words) | {a + " " + b for a, b in pairwise(words)}
        cols.extend(zlib.crc32(g.encode()) & ((1 << bits) - 1) for g in grams)
        rows.extend([i] * len(grams))
    x = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(prompts), 1 << bits))
    x.data[:] = 1.0  # colliding grams count once
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ x)


def _score(fit: ReplayDataset, ev: ReplayDataset, predict: Predict, at: float) -> float:
    pair = strong_weak(ev)
    if pair is not None:
        strong, weak = pair
        pred = predict(fit.quality)
        return round(threshold_cpt(ev, strong, weak, pred[:, strong] - pred[:, weak]), 4)
    g = ev.models.index(GPT4)
    q_ref, c_ref = float(ev.quality[:, g].mean()), float(ev.cost[:, g].mean())
    c_fit = float(fit.cost[:, g].mean())
    rows = np.arange(ev.n)
    points = []
    for f in np.r_[np.linspace(0.0, 0.2, 11), np.geomspace(0.25, 8.0, 20)]:
        choice = predict(fit.quality - f * fit.cost / c_fit).argmax(axis=1)
        points.append((float(ev.cost[rows, choice].mean()) / c_ref,
                       float(ev.quality[rows, choice].mean()) / q_ref))
    return round(envelope_at(points, at), 4)


def measure(fit: ReplayDataset, ev: ReplayDataset, at: float,
            lams: Sequence[float]) -> dict[str, float]:
    featurize = default_featurizer(64)
    zf, ze = standardized_design(featurize(fit.prompts), featurize(ev.prompts))
    prior = np.full(zf.shape[1], 64.0)
    prior[0] = 1.0
    gram = zf.T @ zf + np.diag(prior)

    def hashed(y: np.ndarray) -> np.ndarray:
        return np.asarray(ze @ np.linalg.solve(gram, zf.T @ y))

    sf, se = bag_of_words(fit.prompts), bag_of_words(ev.prompts)
    kf, ke = (sf @ sf.T).toarray(), (se @ sf.T).toarray()
    slot_mass = np.asarray(sf.multiply(sf).sum(axis=0)).ravel()
    df, de = bag_of_words(fit.prompts, 9).toarray(), bag_of_words(ev.prompts, 9).toarray()
    out: dict[str, float] = {}
    if fit.tasks and ev.tasks:
        fit_tasks = np.array(fit.tasks)

        def task(y: np.ndarray) -> np.ndarray:
            means = {t: y[fit_tasks == t].mean(axis=0) for t in set(fit.tasks or [])}
            return np.stack([means.get(t, y.mean(axis=0)) for t in ev.tasks or []])

        out["task"] = _score(fit, ev, task, at)
        # the task label given to the router: as the caller's categorical context today (its
        # value signed-hashed into the 64-d vector's 8 categorical slots), or one-hot next to
        # the 64-d features (one slot per value, the same ridge prior)
        extractor = FeatureExtractor(dim=64)
        zf_c, ze_c = standardized_design(
            np.stack([extractor.extract(p, categorical={"task": t})
                      for p, t in zip(fit.prompts, fit.tasks, strict=True)]),
            np.stack([extractor.extract(p, categorical={"task": t})
                      for p, t in zip(ev.prompts, ev.tasks, strict=True)]))
        names = sorted(set(fit.tasks) | set(ev.tasks))
        onehot_f = np.eye(len(names))[[names.index(t) for t in fit.tasks]]
        onehot_e = np.eye(len(names))[[names.index(t) for t in ev.tasks]]
        for key, (af, ae) in {"hashed64_task_context": (zf_c, ze_c),
                              "hashed64_task_onehot": (np.c_[zf, onehot_f],
                                                       np.c_[ze, onehot_e])}.items():
            p_ = np.full(af.shape[1], 64.0)
            p_[0] = 1.0

            def ridge(y: np.ndarray, af: np.ndarray = af, ae: np.ndarray = ae,
                      p_: np.ndarray = p_) -> np.ndarray:
                return np.asarray(ae @ np.linalg.solve(af.T @ af + np.diag(p_), af.T @ y))

            out[key] = _score(fit, ev, ridge, at)
    out["hashed64"] = _score(fit, ev, hashed, at)
    for lam in lams:
        def kernel(y: np.ndarray, lam: float = lam) -> np.ndarray:
            residual = y - zf @ np.linalg.solve(gram, zf.T @ y)
            return hashed(y) + ke @ np.linalg.solve(kf + lam * np.eye(fit.n), residual)

        def diagonal(y: np.ndarray, lam: float = lam) -> np.ndarray:
            residual = y - zf @ np.linalg.solve(gram, zf.T @ y)
            weights = (sf.T @ residual) / (lam + slot_mass)[:, None]
            return hashed(y) + np.asarray(se @ weights)

        def dense(y: np.ndarray, lam: float = lam) -> np.ndarray:
            residual = y - zf @ np.linalg.solve(gram, zf.T @ y)
            coef = np.linalg.solve(df.T @ df + lam * np.eye(df.shape[1]), df.T @ residual)
            return hashed(y) + de @ coef

        out[f"sparse_lam{lam:g}"] = _score(fit, ev, kernel, at)
        out[f"sparse_diagonal_lam{lam:g}"] = _score(fit, ev, diagonal, at)
        out[f"dense512_lam{lam:g}"] = _score(fit, ev, dense, at)
    return out


def halves(train: ReplayDataset, n: int, at: float, lams: Sequence[float],
           fit_share: float = 0.5) -> dict[str, Any]:
    """:func:`measure` on ``n`` random cuts of ``train`` (numpy seeds 0..n-1; fit on
    ``fit_share`` of it, score the rest): each representation's mean and sd, and its paired
    difference from ``hashed64`` (mean, sd, and on how many cuts it is better). How much of a
    difference on one cut (the fixed validation cut) is the cut's luck."""
    rows = []
    for seed in range(n):
        perm = np.random.default_rng(seed).permutation(train.n)
        half = round(train.n * fit_share)
        fit = train.subset(sorted(perm[:half].tolist()), split="fit")
        ev = train.subset(sorted(perm[half:].tolist()), split="validation")
        rows.append(measure(fit, ev, at, lams))
    lower_better = strong_weak(train) is not None
    out: dict[str, Any] = {"metric": "cpt50 (lower is better)" if lower_better
                           else f"accuracy / GPT-4's at {at:g} of its cost (higher is better)",
                           "cuts": n, "n_fit": round(train.n * fit_share)}
    base = np.array([r["hashed64"] for r in rows])
    for key in rows[0]:
        v = np.array([r[key] for r in rows])
        d = v - base
        better = (d < 0) if lower_better else (d > 0)
        out[key] = {"mean": round(float(v.mean()), 4), "sd": round(float(v.std()), 4),
                    "minus_hashed64_mean": round(float(d.mean()), 4),
                    "minus_hashed64_sd": round(float(d.std()), 4),
                    "better_than_hashed64": int(better.sum())}
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="routellm-mmlu,routellm-gsm8k,routerbench")
    parser.add_argument("--split", choices=("validation", "test", "halves"), default="validation")
    parser.add_argument("--halves", type=int, default=12,
                        help="with --split halves: how many random cuts of the train split")
    parser.add_argument("--fit-share", type=float, default=0.5,
                        help="with --split halves: the share of each cut that is fitted")
    parser.add_argument("--at", type=float, default=0.25,
                        help="cost as a fraction of GPT-4's (datasets with more than 2 models)")
    parser.add_argument("--lams", default="1,3,10")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.data_root or default_data_root()
    start = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "sparse_bound", "split": args.split,
                              "bits": BITS, "datasets": {}}
    for name in args.datasets.split(","):
        train = load_dataset(name, "train", root)
        if args.split == "halves":
            report["datasets"][name] = halves(train, args.halves, args.at,
                                              [float(v) for v in args.lams.split(",")],
                                              args.fit_share)
            continue
        fit, ev = (split_fit_validation(train) if args.split == "validation"
                   else (train, load_dataset(name, "test", root)))
        metric = ("cpt50 (lower is better)" if strong_weak(ev) is not None
                  else f"accuracy / GPT-4's at {args.at:g} of its cost (higher is better)")
        report["datasets"][name] = {
            "metric": metric, "n_fit": fit.n, "n_eval": ev.n,
            **measure(fit, ev, args.at, [float(v) for v in args.lams.split(",")])}
    report["seconds"] = round(time.perf_counter() - start, 1)
    print_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
