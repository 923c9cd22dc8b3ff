"""The policy base class (:class:`Decision` and its probability helpers: learners/decision.py).

A :class:`Policy` owns the public methods (``select``, ``update``, ``correct``, arm
management, ``summary``); algorithms fill private hooks (``_select``, ``_learn``,
``_relearn``, ``_grow``, ``_get_state``/``_set_state``). Validation, candidate handling,
online feature scaling and bookkeeping live here once.

Online feature scaling
----------------------
Policies accept *raw* feature vectors. Policies that use features (all but ``uniform`` and
``fixed``) standardise them with a running mean and variance that is part of the learned state
(:class:`~banditroute.learners._scaling.OnlineScaler`; hyperparameters ``scaling``,
``scale_clip``, ``scale_freeze_after``). A constant intercept feature 1.0 is appended after
scaling, so the internal dimension is ``dim + 1``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from banditroute.learners._scaling import OnlineScaler
from banditroute.learners._validation import (
    check_arm_name,
    check_arms,
    check_choice,
    check_float,
    check_group,
    check_int,
    check_reward,
    check_rng,
    check_vector,
)
from banditroute.learners.decision import Decision, epsilon_greedy_probabilities, sample_index

# Decision and the probability helpers live in learners/decision.py; re-exported here, where
# the algorithms and the service import them from.
__all__ = ["Decision", "Policy", "epsilon_greedy_probabilities", "sample_index"]

_BASE_HYPERPARAMETERS = ("scaling", "scale_clip", "scale_freeze_after")


class Policy(abc.ABC):
    """Base class of every contextual bandit policy.

    Parameters
    ----------
    arms
        Initial arm names (distinct, non-empty strings).
    dim
        Length of the raw feature vectors passed to ``select``/``update``.
    seed
        Seed of the policy's own random generator (used when ``select`` gets no ``rng``).
    scaling
        ``"standard"`` (online standardisation, see the module docstring) or ``"none"``.
    scale_clip
        Standardised features are clipped to ``[-scale_clip, scale_clip]``.
    scale_freeze_after
        Stop updating the scaler after this many updates (``None``: never freeze).

    Notes
    -----
    Arms that are removed with :meth:`remove_arm` are never chosen again, but keep their state:
    late rewards for them are still accepted by :meth:`update`, and :meth:`add_arm` with the same
    name re-activates them.

    Examples
    --------
    >>> import numpy as np
    >>> from banditroute.learners import make_policy
    >>> policy = make_policy("linucb", ["small", "large"], dim=2, seed=0)
    >>> x = np.array([0.3, 1.0])
    >>> decision = policy.select(x, rng=np.random.default_rng(1))
    >>> decision.arm in ("small", "large"), decision.propensity > 0
    (True, True)
    >>> _ = policy.update(x, decision.arm, 0.8)
    >>> _ = policy.correct(x, decision.arm, 0.8, 0.2)   # feedback arrived later
    >>> _ = policy.add_arm("medium").remove_arm("small")
    >>> policy.arms
    ['large', 'medium']
    >>> policy.select(x, ["medium"]).arm
    'medium'
    """

    algorithm: ClassVar[str] = ""
    _uses_features: ClassVar[bool] = True
    #: Whether the policy learns per-group effects (see ``group`` in :meth:`select`).
    _uses_groups: ClassVar[bool] = False

    def __init__(
        self,
        arms: Iterable[str],
        dim: int,
        seed: int = 0,
        *,
        scaling: str = "standard",
        scale_clip: float = 5.0,
        scale_freeze_after: int | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            name = sorted(unknown)[0]
            valid = ", ".join(self.hyperparameter_names())
            raise ValueError(
                f"unknown hyperparameter {name!r} for {self.algorithm or type(self).__name__}; "
                f"valid hyperparameters: {valid}"
            )
        names = check_arms(arms)
        self._dim = check_int("dim", dim, low=1)
        self.seed = check_int("seed", seed, low=0)
        self.scaling = check_choice("scaling", scaling, ("standard", "none"))
        self.scale_clip = check_float("scale_clip", scale_clip, low=0.0, low_open=True)
        self.scale_freeze_after = (
            None
            if scale_freeze_after is None
            else check_int("scale_freeze_after", scale_freeze_after, low=1)
        )
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._arm_names: list[str] = []
        self._index: dict[str, int] = {}
        self._active = np.zeros(0, dtype=bool)
        self._counts = np.zeros(0, dtype=np.int64)
        self._reward_sums = np.zeros(0, dtype=np.float64)
        self._scaler = OnlineScaler(self._dim, self.scaling, self.scale_clip,
                                    self.scale_freeze_after)
        self._active_idx = np.zeros(0, dtype=np.int64)
        self._active_names: list[str] = []
        # candidate list -> validated index array; cleared whenever the active arms change
        self._candidate_cache: dict[tuple[str, ...], np.ndarray] = {}
        self._init_state()
        for name in names:
            self._append_arm(name)

    # ------------------------------------------------------------------ introspection
    @classmethod
    def hyperparameter_names(cls) -> list[str]:
        """Names of the keyword-only hyperparameters this class accepts.

        Examples
        --------
        >>> from banditroute.learners import LinUCB
        >>> LinUCB.hyperparameter_names()[:3]
        ['alpha', 'ridge', 'context_ridge']
        """
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        return names

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters as given (after validation)."""
        return {name: getattr(self, name) for name in self.hyperparameter_names()}

    @property
    def dim(self) -> int:
        """Length of the raw feature vectors."""
        return self._dim

    @property
    def arms(self) -> list[str]:
        """Active arms (those that can be chosen), in insertion order."""
        return list(self._active_names)

    @property
    def known_arms(self) -> list[str]:
        """Every arm ever added, removed ones included (they still accept late rewards).

        Examples
        --------
        >>> from banditroute.learners import Uniform
        >>> p = Uniform(["a", "b"], dim=1).remove_arm("a")
        >>> p.arms, p.known_arms
        (['b'], ['a', 'b'])
        """
        return list(self._arm_names)

    # ------------------------------------------------------------------ public API
    def select(
        self,
        x: Any,
        candidates: Iterable[str] | None = None,
        *,
        rng: np.random.Generator | None = None,
        group: str | None = None,
    ) -> Decision:
        """Choose an arm for context ``x`` among ``candidates`` (default: all active arms).

        Parameters
        ----------
        x
            Raw feature vector of length ``dim`` (finite numbers).
        candidates
            Arms allowed for this request; each must be an active arm.
        rng
            Generator used for all exploration randomness instead of the policy's own one
            (so that the policy's state depends on its updates only).
        group
            A label of the request's kind (task, product feature, tenant...). Policies with
            group effects (LinUCB, linear Thompson sampling) learn one effect per arm and
            group; the others ignore it. Pass the same group to :meth:`update`.

        Returns
        -------
        Decision
            The chosen arm, its propensity, per-candidate scores and probabilities, ranking.
        """
        xv = check_vector(x, self._dim)
        idx = self._candidate_indices(candidates)
        gen = self._rng if rng is None else check_rng(rng)
        assert gen is not None
        g = None if group is None else check_group(group)
        if g is not None and self._uses_groups:
            return self._select_in_group(xv, idx, gen, g)
        return self._select(xv, idx, gen)

    def update(self, x: Any, arm: str, reward: Any, *, group: str | None = None) -> Policy:
        """Learn from one event: ``arm`` was played for context ``x`` (in ``group``, see
        :meth:`select`) and earned ``reward``.

        Returns
        -------
        Policy
            ``self``.
        """
        xv, i = self._event(x, arm)
        r = check_reward(reward)
        if self._uses_features:
            self._scaler.learn(xv)
        g = None if group is None else check_group(group)
        if g is not None and self._uses_groups:
            self._learn_in_group(xv, i, r, g)
        else:
            self._learn(xv, i, r)
        self._counts[i] += 1
        self._reward_sums[i] += r
        return self

    def correct(
        self, x: Any, arm: str, old_reward: Any, new_reward: Any, *, group: str | None = None
    ) -> Policy:
        """Replace the reward of an event already passed to :meth:`update`.

        Used when a revised reward (e.g. human feedback) arrives later. Update counts are not
        changed; what the model does is algorithm specific (see each class).

        Returns
        -------
        Policy
            ``self``.
        """
        xv, i = self._event(x, arm)
        old = check_reward(old_reward, "old_reward")
        new = check_reward(new_reward, "new_reward")
        g = None if group is None else check_group(group)
        if g is not None and self._uses_groups:
            self._relearn_in_group(xv, i, old, new, g)
        else:
            self._relearn(xv, i, old, new)
        self._reward_sums[i] += new - old
        return self

    def add_arm(self, arm: str) -> Policy:
        """Add a new arm (or re-activate a removed one, keeping its state).

        The prior a brand-new arm gets is algorithm specific and makes sure it is explored.
        """
        name = check_arm_name(arm)
        i = self._index.get(name)
        if i is None:
            self._append_arm(name)
        elif self._active[i]:
            raise ValueError(f"arm {name!r} is already an active arm")
        else:
            self._active[i] = True
            self._refresh_active()
        return self

    def remove_arm(self, arm: str) -> Policy:
        """Never choose ``arm`` again (its state is kept for late rewards)."""
        i = self._known_index(arm)
        self._active[i] = False
        self._refresh_active()
        return self

    @property
    def groups(self) -> int:
        """Request groups with their own learnt effects (0 for policies without them)."""
        return 0

    @property
    def group_prior(self) -> float:
        """Prior precision of the group effects now (0.0 for policies without them)."""
        return 0.0

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per-arm number of updates, mean reward (``None`` before any) and whether active.

        Examples
        --------
        >>> from banditroute.learners import Uniform
        >>> p = Uniform(["a", "b"], dim=2).update([0.0, 1.0], "a", 1.0)
        >>> p.summary()["a"]
        {'updates': 1, 'mean_reward': 1.0, 'active': True}
        """
        out: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(self._arm_names):
            n = int(self._counts[i])
            out[name] = {
                "updates": n,
                "mean_reward": float(self._reward_sums[i] / n) if n else None,
                "active": bool(self._active[i]),
            }
        return out

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}(arms={self.arms!r}, dim={self._dim}, {params})"

    # ------------------------------------------------------------------ hooks
    def _init_state(self) -> None:  # noqa: B027 - optional hook
        """Create empty learned state (called once, before the initial arms are added)."""

    @abc.abstractmethod
    def _select(self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> Decision:
        """Choose among arm indices ``idx`` (sorted ascending) for raw context ``x``."""

    @abc.abstractmethod
    def _learn(self, x: np.ndarray, i: int, reward: float) -> None:
        """Learn one event for arm index ``i`` (the scaler was already updated)."""

    @abc.abstractmethod
    def _relearn(self, x: np.ndarray, i: int, old: float, new: float) -> None:
        """Replace the reward of an already learnt event."""

    def _select_in_group(
        self, x: np.ndarray, idx: np.ndarray, rng: np.random.Generator, group: str
    ) -> Decision:
        """:meth:`_select` for a request in ``group`` (policies with ``_uses_groups``)."""
        raise NotImplementedError

    def _learn_in_group(self, x: np.ndarray, i: int, reward: float, group: str) -> None:
        """:meth:`_learn` for an event in ``group`` (policies with ``_uses_groups``)."""
        raise NotImplementedError

    def _relearn_in_group(
        self, x: np.ndarray, i: int, old: float, new: float, group: str
    ) -> None:
        """:meth:`_relearn` for an event in ``group`` (policies with ``_uses_groups``)."""
        raise NotImplementedError

    @abc.abstractmethod
    def _grow(self) -> None:
        """Append the learned state of a brand-new arm (the last index)."""

    def _get_state(self) -> dict[str, Any]:
        """Learned state: numpy arrays and JSON-compatible values."""
        return {
            "arm_names": list(self._arm_names),
            "active": self._active.copy(),
            "counts": self._counts.copy(),
            "reward_sums": self._reward_sums.copy(),
            **self._scaler.get_state(),
            "rng": self._rng.bit_generator.state,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_get_state` returned (arms were already created)."""
        names = list(state["arm_names"])
        if names != self._arm_names:
            raise ValueError("state arm names do not match the policy's arms")
        k = len(names)
        self._active = _array(state["active"], (k,), bool)
        self._counts = _array(state["counts"], (k,), np.int64)
        self._reward_sums = _array(state["reward_sums"], (k,), np.float64)
        self._scaler.set_state(
            int(state["scale_n"]),
            _array(state["scale_mean"], (self._dim,), np.float64),
            _array(state["scale_m2"], (self._dim,), np.float64),
        )
        self._rng.bit_generator.state = state["rng"]
        self._refresh_active()

    # ------------------------------------------------------------------ helpers
    def _append_arm(self, name: str) -> None:
        self._index[name] = len(self._arm_names)
        self._arm_names.append(name)
        self._active = np.append(self._active, True)
        self._counts = np.append(self._counts, np.int64(0))
        self._reward_sums = np.append(self._reward_sums, 0.0)
        self._grow()
        self._refresh_active()

    def _refresh_active(self) -> None:
        self._active_idx = np.flatnonzero(self._active).astype(np.int64)
        self._active_names = [self._arm_names[i] for i in self._active_idx.tolist()]
        self._candidate_cache = {}

    def _event(self, x: Any, arm: Any) -> tuple[np.ndarray, int]:
        """The checked context vector and the known index of ``arm`` of one event."""
        return check_vector(x, self._dim), self._known_index(arm)

    def _known_index(self, arm: Any) -> int:
        if not isinstance(arm, str):
            raise TypeError(f"arm must be a str, got {type(arm).__name__}")
        i = self._index.get(arm)
        if i is None:
            raise ValueError(f"unknown arm {arm!r}; known arms: {', '.join(self._arm_names)}")
        return i

    def _candidate_indices(self, candidates: Iterable[str] | None) -> np.ndarray:
        if candidates is None:
            if not len(self._active_idx):
                raise ValueError("the policy has no active arms")
            return self._active_idx
        if isinstance(candidates, str):
            raise TypeError("candidates must be a sequence of arm names, not a str")
        key = tuple(candidates)
        cached = self._candidate_cache.get(key)
        if cached is not None:
            return cached
        idx = self._validate_candidates(key)
        if len(self._candidate_cache) >= _CANDIDATE_CACHE_SIZE:
            self._candidate_cache.clear()
        self._candidate_cache[key] = idx
        return idx

    def _validate_candidates(self, candidates: tuple[str, ...]) -> np.ndarray:
        seen: set[int] = set()
        for arm in candidates:
            i = self._known_index(arm)
            if not self._active[i]:
                raise ValueError(f"candidate arm {arm!r} was removed")
            seen.add(i)
        if not seen:
            raise ValueError("candidates must contain at least one arm")
        if len(seen) == len(self._active_idx):  # every active arm: share the active arrays
            return self._active_idx
        idx = np.array(sorted(seen), dtype=np.int64)
        idx.flags.writeable = False  # shared by later calls with the same candidates
        return idx

    def _features(self, x: np.ndarray) -> np.ndarray:
        """Scaled features plus the intercept (length ``dim + 1``)."""
        z = np.empty(self._dim + 1)
        self._scaler.transform_into(x, z[: self._dim])
        z[self._dim] = 1.0
        return z

    def _decision(
        self, idx: np.ndarray, scores: np.ndarray, probs: np.ndarray, pos: int
    ) -> Decision:
        """Build a :class:`Decision` from per-candidate arrays aligned with ``idx``."""
        if idx is self._active_idx:
            names = self._active_names
        else:
            all_names = self._arm_names
            names = [all_names[i] for i in idx.tolist()]
        score_list = scores.tolist()
        prob_list = probs.tolist()
        # Best first; ties keep the arm order (sorted is stable); the chosen arm leads.
        order = sorted(range(len(names)), key=score_list.__getitem__, reverse=True)
        arm = names[pos]
        ranking = [arm]
        ranking += [names[j] for j in order if j != pos]
        # positional arguments and zip() without keywords: measurably cheaper per call
        return Decision(
            arm,
            prob_list[pos],
            dict(zip(names, score_list)),  # noqa: B905 - equal lengths
            dict(zip(names, prob_list)),  # noqa: B905 - equal lengths
            ranking,
        )


#: Distinct candidate lists whose index arrays a policy remembers.
_CANDIDATE_CACHE_SIZE = 1024


def _array(value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    arr = np.array(value, dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"state array has shape {arr.shape}, expected {shape}")
    return arr
