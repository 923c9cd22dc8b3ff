"""Does the sparse bag of words help *online*? LinUCB plus a per-arm diagonal ridge on tokens.

``sparse_bound.py`` shows, with full information, that a 2^16-slot bag of unigrams and bigrams
fitted per slot (a diagonal ridge) on the residuals of the 64-d ridge carries MMLU's and
GSM8K's routing signal, which the 64-d features do not. This script measures the same idea as a
bandit learns it, through ``run_experiment`` (the replay the CLI runs), on the validation cut of
the train split only (the test split is never read), before any of it goes into the service.

The learner (:class:`TokenLinUCB`, defined here: an experiment, not a shipped policy) is the
shipped LinUCB plus, per arm, ``B[slot] += residual * v`` and ``M[slot] += v ** 2`` on each
update, with ``residual`` the reward minus the arm's dense mean before the update and ``v`` the
row-normalised one-hot weight of each of the prompt's grams. The sparse prediction
``sum v * B / (token_ridge + M)`` is added to every arm's mean, times a weight ``g``:

* ``off``: ``g = 0`` (the shipped LinUCB; the baseline);
* ``ls``: ``g`` learnt online as the least-squares weight of the sparse prediction (made before
  each update) against the dense residual, clipped to [0, 1];
* ``fixed``: ``g = 1``;
* ``rel``: only the arm-relative part ``s_a - mean(s)`` is added, times ``g`` learnt online as
  the least-squares weight of that part (before each update) against the arm's dense residual,
  clipped to [0, 1] (a shift common to every arm never changes a choice; regressing on the
  relative part alone keeps its weight from being set by the common part);
* ``stack``: the prediction is ``w0 * intercept + w1 * context + w2 * grams`` (the dense mean
  split into its intercept and context parts), the three weights a ridge regression of the
  reward on the three parts (taken before each prompt's first update), pulled towards
  ``(1, 1, 0)`` by 10 pseudo-events: each group's shrinkage learnt from the data;
* ``top2``: ``g = 1``, but the grams only reorder the two arms with the best dense scores
  (on a two-model pool the same as ``fixed``; on a crowd of near-tied models they cannot pick
  the luckiest of all);
* ``mix``: a weight learnt from decisions. Where the grams (weight 1) and the dense scores pick
  different arms, the learner picks the grams' arm with probability ``w`` and the dense one
  otherwise (exact propensities), credits each scorer with the reward divided by its arm's
  propensity, and sets ``w = logistic(4 * (G_grams - G_dense) / sqrt(n + 1))`` in [0.02, 0.98];
  a fully labelled history credits both scorers' picks directly;
* ``support``: ``g = 1``, but only the slots an arm has seen at least ``SUPPORT`` times count
  (many weakly supported grams add noise to every score; well supported ones carry a topic);
* ``select``: ``g = 1`` with the ``token_ridge`` of a grid (or no sparse part) whose progressive
  squared error (predictions made before each update) is lowest so far; the sufficient
  statistics do not depend on the ridge, so every candidate is scored from one state.
* ``cv``: ``g`` chosen from ``CV_GRID`` on the fully labelled warm-start history by the
  *decisions* each weight would have made: before each history prompt's first update, the
  arm each weight picks (the same score as ``_select``); each weight is credited with that
  arm's reward (at the run's cost weight) when it comes in. Only the history's second half
  counts (the grams know little before it). The weight with the most credit wins (ties: the
  smallest) and stays fixed in the bandit pass; a cold start keeps 0.
* ``cvrank``: as ``cv``, but each weight is scored by how its score *differences* rank the
  history's second-half prompts: for every pair of arms, the concordance (Kendall's tau-a
  over pairs of prompts) of the predicted difference with the realised reward difference,
  averaged over the pairs of arms. This is what CPT(50%) and a paced budget use: which
  prompts deserve the dearer model most, not whether each pick is right at one cost weight.
* ``cvfold``: as ``cvrank``, over the whole history, with each prompt's gram prediction
  held out: the grams' sums are additive, so the sums without a fold are the totals minus
  that fold's part (two folds, by row parity); the dense scores are the final model's.
* ``cvfold2``: as ``cvfold``, with the dense scores held out too: per arm, a ridge with the
  shipped prior fitted on the other fold (posterior mean, no bonus).
* ``cvfold5``: as ``cvfold2`` with five folds (row index modulo 5), so that each fold's grams
  and ridge see four fifths of the history, closer to what the pass starts with.
* ``eb``: empirical Bayes. Each arm's per-slot effect ``B / (token_ridge + M)`` minus the
  arms' mean effect for that slot, shrunk by ``tau2 / (tau2 + noise)``: ``noise`` is the
  estimate's sampling variance (the dense residuals' variance times ``M / (token_ridge +
  M) ** 2``) and ``tau2`` the method-of-moments variance of the true effects around their
  mean (the deviations' mean square net of their sampling variance, over the slots every
  arm has seen; re-estimated every ``EB_REFRESH`` updates). A pool whose arms' slot effects
  differ no more than their noise gets no grams.
* ``cvcurve``: the weight chosen once per labelled history by the quantity the checks score,
  held out: on five folds of the history (row index modulo 5), a static full-information fit
  of the shipped 64-d ridge plus each weight times the per-slot gram ridge on its residuals
  (``sparse_bound.py``'s ``hashed64`` and ``sparse_diagonal``) predicts every held-out
  prompt's quality per model; each weight's curve (the choices of ``argmax(quality - f *
  cost)`` over a sweep of ``f``) is scored by CPT(50%) on a two-model pool and by the mean
  accuracy of its upper envelope over cost fractions 0.05-1 of the dearest model otherwise.
  The best weight (ties: the smallest) is fixed for every cost weight of the pass; a cold start
  keeps 0 (it has no history).

The prompt's row id rides as an extra last column of the feature matrix, which the learner
strips (so the 64 dense features are exactly the shipped ones).

Usage::

    python benchmarks/sparse_online.py [--datasets routellm-mmlu,routellm-gsm8k,routerbench]
        [--variants off,ls,fixed:0.25,select,rel:0.25] [--seeds 2]
        [--out benchmarks/results/sparse_online_validation.json]
    python benchmarks/sparse_online.py --mix-trace --datasets routellm-mmlu,routerbench
        --out benchmarks/results/sparse_online_mix_trace.json
    python benchmarks/sparse_online.py --eb-trace --datasets routellm-gsm8k,routerbench
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bounds import envelope_at
from replay import print_json, split_fit_validation, threshold_cpt
from sparse_bound import BITS, bag_of_words

from banditroute.learners import registry
from banditroute.learners.base import Decision
from banditroute.learners.linear import LinUCB
from banditroute.service.replay.baselines import strong_weak
from banditroute.service.replay.cli import default_cost_weights
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.experiment import ReplayConfig, run_experiment
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import (
    PolicySpec,
    default_featurizer,
    run_online,
    warm_start,
)

#: The grams of every featurised prompt, by the row id in the features' last column.
TOKENS: list[tuple[np.ndarray, np.ndarray]] = []
SELECT_GRID = (0.25, 1.0, 4.0, 16.0)
#: ``cv``: the gram weights the labelled history chooses from (ascending: ties go to the least).
CV_GRID = (0.0, 0.25, 0.5, 1.0)
#: ``support``: a gram's slot counts for an arm once that arm has seen it this many times.
SUPPORT = 20
#: ``eb``: re-estimate the between-arm variance of slot effects every this many updates.
EB_REFRESH = 50


def featurize_with_ids(prompts: Sequence[str]) -> np.ndarray:
    """The shipped 64-d features plus a last column holding each prompt's id in TOKENS."""
    dense = default_featurizer(64)(prompts)
    bag = bag_of_words(prompts)
    ids = np.arange(len(TOKENS), len(TOKENS) + len(prompts), dtype=np.float64)[:, None]
    for i in range(len(prompts)):
        lo, hi = bag.indptr[i], bag.indptr[i + 1]
        TOKENS.append((bag.indices[lo:hi].astype(np.int64), bag.data[lo:hi].copy()))
    return np.hstack([dense, ids])


class TokenLinUCB(LinUCB):
    """LinUCB plus a gated per-arm diagonal ridge on hashed grams (see the module doc)."""

    algorithm = "linucb_tokens"

    def __init__(self, arms: Iterable[str], dim: int, seed: int = 0, *, gate: str = "off",
                 token_ridge: float = 1.0, curve_weight: float = 0.0, **params: Any) -> None:
        self.gate, self.token_ridge = gate, token_ridge
        self.curve_weight = curve_weight  # cvcurve: chosen on the history by curve_weight()
        super().__init__(arms, dim - 1, seed, **params)

    def _init_state(self) -> None:
        super()._init_state()
        self._b = np.zeros((0, 1 << BITS))
        self._m = np.zeros((0, 1 << BITS))
        self._c = np.zeros((0, 1 << BITS), dtype=np.int32)
        self._sxy = self._sxx = 0.0
        # (row, what the gate computed from the state before that prompt's first update)
        self._row_cache: tuple[int, Any] | None = None
        self._gram = np.eye(3) * 10.0  # the stacking weights' prior: 10 events at (1, 1, 0)
        self._rhs = np.array([10.0, 10.0, 0.0])
        self._g = np.zeros(2)  # mix: (grams, dense) value sums on rounds where they disagree
        self._n_disagree = 0
        self._pending: dict[int, tuple[int, int, float]] = {}
        self._row = -1
        self._errors = np.zeros(len(SELECT_GRID) + 1)  # the last one: no sparse part
        self._credits: list[np.ndarray] = []  # cv: per history row, each weight's reward
        #: cvrank: per history row, (row, scores per weight and arm, rewards per arm)
        self._ranked: list[tuple[int, np.ndarray, np.ndarray]] = []
        #: cvfold: per history row, (row, dense x, rewards per arm, (arm, residual) updates)
        self._history: list[tuple[int, np.ndarray, np.ndarray, list[tuple[int, float]]]] = []
        self._cv_weight: float | None = None  # cv: chosen at the first select after them
        self._history_seen = False  # cvcurve: a labelled history was fed (a warm start)
        self._selected_row = -1  # the last row select() saw: its update is a bandit round
        self._tokens = TOKENS[0] if TOKENS else (np.zeros(0, np.int64), np.zeros(0))
        self._rss, self._n_res = 0.0, 0  # eb: the dense residuals' sum of squares and count
        self._tau2: float | None = None  # eb: between-arm variance of slot effects (cached)
        self._tau2_at = -1

    def _grow(self) -> None:
        super()._grow()
        self._b = np.vstack([self._b, np.zeros((1, 1 << BITS))])
        self._m = np.vstack([self._m, np.zeros((1, 1 << BITS))])
        self._c = np.vstack([self._c, np.zeros((1, 1 << BITS), dtype=np.int32)])

    def _effects(self, cols: Any, ridge: float) -> tuple[np.ndarray, np.ndarray]:
        """``eb``: per active arm and slot of ``cols``, the slot effect's deviation from the
        arms' mean effect and the effect's sampling variance."""
        idx = self._active_idx
        m = self._m[idx][:, cols]
        beta = self._b[idx][:, cols] / (ridge + m)
        return beta - beta.mean(axis=0), self._rss / self._n_res * m / (ridge + m) ** 2

    def _eb_dispersion(self) -> tuple[float, float, int]:
        """``eb``: over the slots every active arm has seen, the deviations' mean square, the
        part of it sampling noise explains ((k - 1) / k of the mean sampling variance) and
        how many slots that is."""
        idx = self._active_idx
        k = len(idx)
        seen = (self._m[idx] > 0).all(axis=0)
        if k < 2 or not seen.any() or self._n_res < 2:
            return 0.0, 0.0, 0
        dev, noise = self._effects(seen, self.token_ridge)
        return float((dev**2).mean()), float(noise.mean()) * (k - 1) / k, int(seen.sum())

    def _eb_tau2(self) -> float:
        """``eb``: method-of-moments estimate of the variance of an arm's slot effect around
        the arms' mean effect, net of each estimate's sampling variance (empirical Bayes)."""
        if self._tau2 is None or self._n_res - self._tau2_at >= EB_REFRESH:
            k = len(self._active_idx)
            deviation, noise, slots = self._eb_dispersion()
            self._tau2 = max(0.0, (deviation - noise) * k / (k - 1)) if slots else 0.0
            self._tau2_at = self._n_res
        return self._tau2

    def _sparse(self, tokens: tuple[np.ndarray, np.ndarray], ridge: float) -> np.ndarray:
        slots, weights = tokens
        if self.gate == "eb":
            tau2 = self._eb_tau2()
            out = np.zeros(len(self._arm_names))
            if tau2 <= 0.0 or not len(slots):
                return out
            dev, noise = self._effects(slots, ridge)
            out[self._active_idx] = (tau2 / (tau2 + noise) * dev) @ weights
            return out
        if self.gate == "support":
            kept = (self._c[:, slots] >= SUPPORT) * weights
            return np.asarray((self._b[:, slots] / (ridge + self._m[:, slots]) * kept).sum(1))
        return np.asarray((self._b[:, slots] / (ridge + self._m[:, slots])) @ weights)

    def _before_first_update(self, row: int, compute: Any) -> Any:
        """``compute()`` once per prompt, before its first update: a fully labelled history
        updates every arm of a prompt in a row, and later arms must not see earlier ones."""
        if self._row_cache is None or self._row_cache[0] != row:
            self._row_cache = (row, compute())
        return self._row_cache[1]

    def _stack_parts(self, z: np.ndarray, tokens: Any) -> np.ndarray:
        """Per arm: the dense mean's intercept part, its context part and the grams'."""
        means = self._ridge.means_and_widths(z, self._intercept_prior())[0]
        ctx = self._ridge.theta[:, :-1].dot(z[:-1])
        return np.stack([means - ctx, ctx, self._sparse(tokens, self.token_ridge)], 1)

    def _weight_and_ridge(self) -> tuple[float, float]:
        if self.gate == "off":
            return 0.0, self.token_ridge
        if self.gate in ("ls", "rel"):
            return min(1.0, max(0.0, self._sxy / (self._sxx + 1.0))), self.token_ridge
        if self.gate in ("fixed", "top2", "support", "eb"):
            return 1.0, self.token_ridge
        if self.gate == "cv":
            if self._cv_weight is None:
                late = self._credits[len(self._credits) // 2 :]
                credit = np.sum(late, axis=0)[:-1] if late else np.zeros(len(CV_GRID))
                self._cv_weight = CV_GRID[int(credit.argmax())]
            return self._cv_weight, self.token_ridge
        if self.gate == "cvrank":
            if self._cv_weight is None:
                self._cv_weight = CV_GRID[int(self._rank_scores().argmax())]
            return self._cv_weight, self.token_ridge
        if self.gate == "cvcurve":
            return (self.curve_weight if self._history_seen else 0.0), self.token_ridge
        if self.gate in ("cvfold", "cvfold2", "cvfold5"):
            if self._cv_weight is None:
                self._cv_weight = CV_GRID[int(self._fold_scores().argmax())]
            return self._cv_weight, self.token_ridge
        best = int(self._errors.argmin())
        return (0.0, 1.0) if best == len(SELECT_GRID) else (1.0, SELECT_GRID[best])

    def select(self, x: Any, candidates: Iterable[str] | None = None, *,
               rng: np.random.Generator | None = None, group: str | None = None) -> Decision:
        x = np.asarray(x)  # the task label is not used here: task_context.py measures it
        self._row = self._selected_row = int(x[-1])
        self._tokens = TOKENS[self._row]
        return super().select(x[:-1], candidates, rng=rng)

    def update(self, x: Any, arm: str, reward: Any, *, group: str | None = None) -> TokenLinUCB:
        x = np.asarray(x)
        row, dense_x = int(x[-1]), x[:-1]
        tokens = TOKENS[row]
        i = self._index[arm]
        dense = float(self._ridge.means_and_widths(self._features(dense_x),
                                                   self._intercept_prior())[0][i])
        residual = float(reward) - dense
        if self.gate == "mix":
            self._mix_learn(row, dense_x, tokens, i, float(reward))
        elif self.gate == "stack":
            f = self._before_first_update(
                row, lambda: self._stack_parts(self._features(dense_x), tokens))[i]
            self._gram += np.outer(f, f)
            self._rhs += f * float(reward)
        elif self.gate == "cvcurve":
            self._history_seen = self._history_seen or row != self._selected_row
        elif self.gate in ("cvfold", "cvfold2", "cvfold5"):
            if row != self._selected_row:  # a labelled history row: keep what a fold needs
                if not self._history or self._history[-1][0] != row:
                    rewards = np.full(len(self._arm_names), np.nan)
                    self._history.append((row, dense_x.copy(), rewards, []))
                self._history[-1][2][i] = float(reward)
                self._history[-1][3].append((i, residual))
        elif self.gate == "cvrank":
            if row != self._selected_row:  # a labelled history row: its scores, then rewards
                scores = self._before_first_update(row, lambda: self._cv_scores(dense_x, tokens))
                if not self._ranked or self._ranked[-1][0] != row:
                    self._ranked.append((row, scores, np.full(len(self._arm_names), np.nan)))
                self._ranked[-1][2][i] = float(reward)
        elif self.gate == "cv":
            if row != self._selected_row:  # a labelled history row, not a bandit round
                picks = self._before_first_update(row, lambda: self._cv_picks(dense_x, tokens))
                if not self._credits or self._credits[-1][-1] != row:
                    self._credits.append(np.zeros(len(CV_GRID) + 1))
                    self._credits[-1][-1] = row
                self._credits[-1][:-1][picks == i] += float(reward)
        elif self.gate in ("eb", "fixed", "top2", "support", "off"):
            pass
        elif self.gate == "select":
            guesses = np.array([self._sparse(tokens, r)[i] for r in SELECT_GRID] + [0.0])
            self._errors += (residual - guesses) ** 2
        else:
            def guesses() -> np.ndarray:
                out = self._sparse(tokens, self.token_ridge)
                return out - out[self._active_idx].mean() if self.gate == "rel" else out

            guess = float(self._before_first_update(row, guesses)[i])
            self._sxy += guess * residual
            self._sxx += guess * guess
        slots, weights = tokens
        self._rss += residual * residual
        self._n_res += 1
        self._b[i, slots] += residual * weights
        self._m[i, slots] += weights * weights
        self._c[i, slots] += 1
        super().update(dense_x, arm, reward)
        return self

    def _ucb(self, dense_x: np.ndarray) -> np.ndarray:
        """Every arm's dense score as ``_select`` makes it: mean plus the UCB bonus."""
        means, widths = self._ridge.means_and_widths(self._features(dense_x),
                                                     self._intercept_prior())
        return np.asarray(means + self.alpha * np.sqrt(widths))

    @staticmethod
    def _weighted(dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
        """Every arm's score under each weight of ``CV_GRID`` (rows: weights)."""
        return np.stack([dense + w * sparse for w in CV_GRID])

    def _cv_scores(self, dense_x: np.ndarray, tokens: Any) -> np.ndarray:
        """Every arm's score under each weight of ``CV_GRID`` (rows: weights)."""
        return self._weighted(self._ucb(dense_x), self._sparse(tokens, self.token_ridge))

    def _fold_scores(self) -> np.ndarray:
        """``cvfold``: :meth:`_concordance` of every history prompt, its gram prediction made
        without the prompt's fold."""
        n = len(self._history)
        if n < 4:
            return np.zeros(len(CV_GRID))
        k = len(self._arm_names)
        scores = np.zeros((n, len(CV_GRID), k))
        rewards = np.stack([r for _, _, r, _ in self._history])
        folds = 5 if self.gate == "cvfold5" else 2
        held_out_dense = self._fold_dense(rewards, folds) if self.gate != "cvfold" else None
        for fold in range(folds):
            b, m = self._b.copy(), self._m.copy()
            for j in range(fold, n, folds):  # take the fold's own part out of the sums
                row, _, _, parts = self._history[j]
                slots, weights = TOKENS[row]
                for i, residual in parts:
                    b[i, slots] -= residual * weights
                    m[i, slots] -= weights * weights
            for j in range(fold, n, folds):
                row, dense_x, _, _ = self._history[j]
                slots, weights = TOKENS[row]
                sparse = (b[:, slots] / (self.token_ridge + np.maximum(m[:, slots], 0.0))) @ weights
                dense = self._ucb(dense_x) if held_out_dense is None else held_out_dense[j]
                scores[j] = self._weighted(dense, sparse)
        return self._concordance(scores, rewards)

    def _fold_dense(self, rewards: np.ndarray, folds: int = 2) -> np.ndarray:
        """``cvfold2``: every history prompt's dense score per arm from a ridge fitted on the
        other fold only (the shipped per-arm prior; posterior mean, no bonus), so that the
        dense part is held out like the grams."""
        z = np.stack([self._features(x) for _, x, _, _ in self._history])
        prior = np.diag(self._ridge.ridge)
        out = np.zeros_like(rewards)
        for fold in range(folds):
            test = np.arange(fold, len(z), folds)
            fit = np.setdiff1d(np.arange(len(z)), test)
            for a in range(rewards.shape[1]):
                rows = fit[~np.isnan(rewards[fit, a])]
                theta = np.linalg.solve(prior + z[rows].T @ z[rows], z[rows].T @ rewards[rows, a])
                out[test, a] = z[test] @ theta
        return out

    def _rank_scores(self) -> np.ndarray:
        """``cvrank``: per weight, the mean over pairs of arms of Kendall's tau-a between the
        predicted and the realised reward differences, over the history's second half."""
        late = self._ranked[len(self._ranked) // 2 :]
        if len(late) < 2:
            return np.zeros(len(CV_GRID))
        scores = np.stack([s for _, s, _ in late])  # (n, weights, arms)
        rewards = np.stack([r for _, _, r in late])  # (n, arms)
        return self._concordance(scores, rewards)

    @staticmethod
    def _concordance(scores: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Per weight: the mean over pairs of arms of Kendall's tau-a between the predicted
        (``scores``: prompts x weights x arms) and realised reward differences."""
        out = np.zeros(len(CV_GRID))
        arms = [a for a in range(rewards.shape[1]) if not np.isnan(rewards[:, a]).any()]
        pairs = [(a, b) for j, a in enumerate(arms) for b in arms[j + 1 :]]
        for a, b in pairs:
            d = rewards[:, a] - rewards[:, b]
            sd = np.sign(d[:, None] - d[None, :])
            for k in range(len(CV_GRID)):
                g = scores[:, k, a] - scores[:, k, b]
                out[k] += float((np.sign(g[:, None] - g[None, :]) * sd).mean()) / len(pairs)
        return out

    def _cv_picks(self, dense_x: np.ndarray, tokens: Any) -> np.ndarray:
        """The arm each weight of ``CV_GRID`` picks now (greedy on ``_select``'s score)."""
        idx = self._active_idx
        return idx[self._cv_scores(dense_x, tokens)[:, idx].argmax(axis=1)]

    def _mix_weight(self) -> float:
        z = (self._g[0] - self._g[1]) / np.sqrt(self._n_disagree + 1.0)
        return float(min(0.98, max(0.02, 1.0 / (1.0 + np.exp(-4.0 * z)))))

    def _mix_learn(self, row: int, dense_x: np.ndarray, tokens: Any, i: int, r: float) -> None:
        pending = self._pending.pop(row, None)
        if pending is not None:  # a bandit round: inverse-propensity credit
            a1, a0, p1 = pending
            k = len(self._active_idx)
            e = self._explore_now()
            if i == a1:
                self._g[0] += r / ((1 - e) * p1 + e / k)
            elif i == a0:
                self._g[1] += r / ((1 - e) * (1 - p1) + e / k)
            self._n_disagree += 1
            return
        def picks() -> tuple[int, int]:  # a fully labelled history: the two scorers' picks
            dense = self._ucb(dense_x)
            c0 = int(dense.argmax())
            c1 = int((dense + self._sparse(tokens, self.token_ridge)).argmax())
            self._n_disagree += c1 != c0
            return c1, c0

        c1, c0 = self._before_first_update(row, picks)
        if c1 != c0:
            if i == c1:
                self._g[0] += r
            elif i == c0:
                self._g[1] += r

    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        z = self._features(x)
        means, widths = self._ridge.means_and_widths(z, self._intercept_prior())
        bonus = self.alpha * np.sqrt(widths)
        if self.gate == "mix":
            dense = (means + bonus)[idx]
            grams = dense + self._sparse(self._tokens, self.token_ridge)[idx]
            c0, c1 = int(dense.argmax()), int(grams.argmax())
            if c0 == c1:
                return self._greedy_decision(idx, grams, rng)
            w = self._mix_weight()
            k = len(idx)
            e = self._explore_now()
            probs = np.full(k, e / k)
            probs[c1] += (1 - e) * w
            probs[c0] += (1 - e) * (1 - w)
            pos = c1 if rng.random() < w else c0
            if e > 0.0 and rng.random() < e:
                pos = int(rng.integers(k))
            self._pending[self._row] = (int(idx[c1]), int(idx[c0]), w)
            return self._decision(idx, grams, probs, pos)
        if self.gate == "stack":
            w = np.linalg.solve(self._gram, self._rhs)
            parts = self._stack_parts(z, self._tokens)
            means = w[0] * parts[:, 0] + w[1] * parts[:, 1] + w[2] * parts[:, 2]
            weight = 0.0
        else:
            weight, ridge = self._weight_and_ridge()
        if weight:
            sparse = self._sparse(self._tokens, ridge)
            if self.gate == "rel":
                sparse -= sparse[idx].mean()
            if self.gate == "top2" and len(idx) > 2:
                dense_scores = (means + bonus)[idx]
                keep = idx[np.argsort(-dense_scores, kind="stable")[:2]]
                # the others keep their dense score; the top two move by their grams, but
                # never below the third, so the grams only decide between the two
                third = float(np.sort(dense_scores)[-3])
                means = means.copy()
                for j in keep.tolist():
                    means[j] = max(means[j] + weight * sparse[j], third - bonus[j] + 1e-12)
            else:
                means = means + weight * sparse
        return self._greedy_decision(idx, (means + bonus)[idx], rng)


def curve_weight(history: ReplayDataset, ridge: float = 0.25, folds: int = 5) -> dict[str, Any]:
    """``cvcurve``'s choice on ``history`` (fully labelled): see the module docstring."""
    z = np.c_[default_featurizer(64)(history.prompts), np.ones(history.n)]
    grams = bag_of_words(history.prompts)
    prior = np.full(z.shape[1], 64.0)
    prior[-1] = 1.0
    dense = np.zeros_like(history.quality)
    sparse_part = np.zeros_like(history.quality)
    for fold in range(folds):
        test = np.arange(fold, history.n, folds)
        fit = np.setdiff1d(np.arange(history.n), test)
        mu, sd = z[fit, :-1].mean(axis=0), z[fit, :-1].std(axis=0)
        sd[sd < 1e-9] = 1.0
        zf, zt = z[fit].copy(), z[test].copy()
        zf[:, :-1] = (zf[:, :-1] - mu) / sd
        zt[:, :-1] = (zt[:, :-1] - mu) / sd
        theta = np.linalg.solve(zf.T @ zf + np.diag(prior), zf.T @ history.quality[fit])
        residual = history.quality[fit] - zf @ theta
        sf = grams[fit]
        mass = np.asarray(sf.multiply(sf).sum(axis=0)).ravel()
        weights = (sf.T @ residual) / (ridge + mass)[:, None]
        dense[test] = zt @ theta
        sparse_part[test] = np.asarray(grams[test] @ weights)
    pair = strong_weak(history)
    scores: dict[str, float] = {}
    for g in CV_GRID:
        pred = dense + g * sparse_part
        if pair is not None:
            strong, weak = pair
            scores[str(g)] = -threshold_cpt(history, strong, weak, pred[:, strong] - pred[:, weak])
            continue
        ref = int(history.mean_cost().argmax())
        q_ref = float(history.quality[:, ref].mean())
        c_ref = float(history.cost[:, ref].mean())
        rows = np.arange(history.n)
        points = []
        for f in np.r_[np.linspace(0.0, 0.2, 11), np.geomspace(0.25, 8.0, 20)]:
            choice = (pred - f * history.cost.mean(axis=0) / c_ref).argmax(axis=1)
            points.append((float(history.cost[rows, choice].mean()) / c_ref,
                           float(history.quality[rows, choice].mean()) / q_ref))
        scores[str(g)] = float(np.mean([envelope_at(points, c)
                                        for c in np.linspace(0.05, 1.0, 20)]))
    best = max(CV_GRID, key=lambda g: (round(scores[str(g)], 6), -g))
    return {"weight": best, "scores": {k: round(v, 4) for k, v in scores.items()},
            "metric": "-CPT(50%)" if pair is not None else "mean envelope accuracy"}


def _spec(variant: str, curve: float = 0.0) -> PolicySpec:
    gate, _, ridge = variant.partition(":")
    params: dict[str, Any] = {"gate": gate}
    if ridge:
        params["token_ridge"] = float(ridge)
    if gate == "cvcurve":
        params["curve_weight"] = curve
    return PolicySpec(TokenLinUCB.algorithm, params, name=variant)


def mix_trace(names: Sequence[str], root: Path | None, out: Path | None) -> dict[str, Any]:
    """Where the grams' and the dense scorer's picks differ, what each earned (``mix:0.25``)."""
    report: dict[str, Any] = {"benchmark": "sparse_online mix trace", "split": "validation",
                              "seed": 0, "datasets": {}}
    for name in names:
        fit, validation = split_fit_validation(load_dataset(name, "train", root))
        x_val, x_fit = featurize_with_ids(validation.prompts), featurize_with_ids(fit.prompts)
        rows = []
        for weight in default_cost_weights(validation):
            policy = TokenLinUCB(validation.models, x_val.shape[1], 0, gate="mix",
                                 token_ridge=0.25)
            # the history in two halves (a seeded cut), so the second half's credits show
            # how the grams choose once they have data
            halves = np.array_split(np.random.default_rng(0).permutation(fit.n), 2)
            warm_start(policy, fit.subset(list(halves[0])), x_fit[halves[0]], weight, 0)
            first_g, first_n = policy._g.copy(), policy._n_disagree
            warm_start(policy, fit.subset(list(halves[1])), x_fit[halves[1]], weight, 0)
            after_history = {"w": round(policy._mix_weight(), 3),
                             "disagreements": policy._n_disagree,
                             "credit_grams": round(float(policy._g[0]), 1),
                             "credit_dense": round(float(policy._g[1]), 1),
                             "second_half_disagreements": policy._n_disagree - first_n,
                             "second_half_credit_grams": round(float(policy._g[0] - first_g[0]),
                                                               1),
                             "second_half_credit_dense": round(float(policy._g[1] - first_g[1]),
                                                               1)}
            run = run_online(policy, validation, x_val, weight, 0)
            rows.append({"cost_weight": weight, "after_history": after_history,
                         "after_pass": {"w": round(policy._mix_weight(), 3),
                                        "disagreements": policy._n_disagree,
                                        "credit_grams": round(float(policy._g[0]), 1),
                                        "credit_dense": round(float(policy._g[1]), 1)},
                         "accuracy": round(run.accuracy, 4),
                         "cost_per_query": round(run.cost_per_query, 6)})
        report["datasets"][name] = rows
        TOKENS.clear()
    print_json(report, out)
    return report


def eb_trace(names: Sequence[str], root: Path | None) -> dict[str, Any]:
    """``eb`` after the fit half's labelled history (middle cost weight, seed 0): the slot
    effects' mean square deviation between arms against its sampling variance, per ridge."""
    report: dict[str, Any] = {"benchmark": "sparse_online eb trace", "split": "validation",
                              "datasets": {}}
    for name in names:
        fit, validation = split_fit_validation(load_dataset(name, "train", root))
        x_fit = featurize_with_ids(fit.prompts)
        weights = default_cost_weights(validation)
        rows = []
        for ridge in (0.25, 1.0, 4.0):
            policy = TokenLinUCB(fit.models, x_fit.shape[1], 0, gate="eb", token_ridge=ridge)
            warm_start(policy, fit, x_fit, weights[len(weights) // 2], 0)
            deviation, noise, slots = policy._eb_dispersion()
            rows.append({"token_ridge": ridge, "slots": slots,
                         "mean_square_deviation": round(deviation, 5),
                         "sampling_variance": round(noise, 5),
                         "ratio": round(deviation / noise, 3),
                         "tau2": round(policy._eb_tau2(), 6)})
        report["datasets"][name] = rows
        TOKENS.clear()
    print_json(report, None)
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="routellm-mmlu,routellm-gsm8k,routerbench")
    parser.add_argument("--variants", default="off,ls,fixed:0.25,select,rel:0.25",
                        help="gate[:token_ridge], comma-separated (see the module doc)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--mix-trace", action="store_true",
                        help="instead: seed 0, warm, each cost weight: the 'mix' credits and w "
                        "after the labelled history and after the pass")
    parser.add_argument("--eb-trace", action="store_true",
                        help="instead: the 'eb' gate's between-arm dispersion of slot effects "
                        "against its sampling variance, after the labelled history")
    args = parser.parse_args(argv)
    registry.ALGORITHMS[TokenLinUCB.algorithm] = TokenLinUCB
    root = args.data_root or default_data_root()
    if args.mix_trace:
        return mix_trace(args.datasets.split(","), root, args.out)
    if args.eb_trace:
        return eb_trace(args.datasets.split(","), root)
    start = time.perf_counter()
    variants = args.variants.split(",")
    curve_choices: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {"benchmark": "sparse_online", "split": "validation",
                              "seeds": args.seeds, "bits": BITS, "datasets": {}}
    keys = ("aiq", "cpt50", "apgr", "accuracy", "cost_per_query", "hull_gap", "late_hull_gap")
    for name in args.datasets.split(","):
        fit, validation = split_fit_validation(load_dataset(name, "train", root))
        curve = 0.0
        if any(v.startswith("cvcurve") for v in variants):
            curve_choices[name] = curve_weight(fit)
            curve = curve_choices[name]["weight"]
            print(f"{name}: cvcurve {curve_choices[name]}", file=sys.stderr)
        specs = [_spec(v, curve) for v in variants]
        config = ReplayConfig(specs, default_cost_weights(validation),
                              seeds=list(range(args.seeds)), warm_start=True)
        result = run_experiment(validation, config, featurize_with_ids, history=fit)
        report["datasets"][name] = {
            f"{r['policy']} {r['start']}": {k: round(float(r[k]), 4) for k in keys if k in r}
            for r in result["results"]}
        TOKENS.clear()
        print(f"{name}: done", file=sys.stderr)
    if curve_choices:
        report["cvcurve"] = curve_choices
    report["seconds"] = round(time.perf_counter() - start, 1)
    print_json(report, args.out)
    return report


if __name__ == "__main__":
    main()
