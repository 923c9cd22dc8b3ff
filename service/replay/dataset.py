"""The in-memory form every replay loader produces: prompts x models outcome tables.

A :class:`ReplayDataset` holds, for ``n`` prompts and ``K`` models, the quality each
model achieved on each prompt (in ``[0, 1]``), what that call cost in USD and
(optionally) its latency. Replay streams the rows through a policy that only ever
sees the chosen model's outcome; baselines and the oracle read the full table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ReplayDataset", "jsonl_lines"]


def jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 JSONL file with their line numbers (from 1), for errors
    that name ``path:number``."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, line


@dataclass(frozen=True)
class ReplayDataset:
    """Per-prompt outcomes of several models.

    Parameters
    ----------
    name
        Dataset name used in reports, e.g. ``"routerbench"``.
    prompts
        ``n`` prompt texts.
    models
        ``K`` model ids (columns of ``quality`` and ``cost``).
    quality
        ``(n, K)`` float array in ``[0, 1]`` (correctness or a graded score).
    cost
        ``(n, K)`` float array, USD per call (finite, non-negative).
    latency
        Optional ``(n, K)`` seconds per call.
    tasks
        Optional per-prompt task label (e.g. RouterBench ``eval_name``); reports break
        results down by it, and replay passes it to policies as the request's categorical
        context ``{"task": label}`` (see :meth:`categorical_contexts`), as a caller that knows
        which product feature a request comes from would.
    ids
        Optional per-prompt identifiers.
    split
        ``"train"``, ``"test"`` or ``"all"``: which part of the source this is.
    notes
        Free-form provenance (price assumptions, token estimates) copied into reports.

    Examples
    --------
    >>> import numpy as np
    >>> ds = ReplayDataset("toy", ["a", "b"], ["m1", "m2"],
    ...                    np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.1], [1.0, 0.1]]))
    >>> ds.n, ds.k, ds.mean_quality().tolist(), ds.mean_cost().tolist()
    (2, 2, [1.0, 0.5], [1.0, 0.1])
    >>> ds.subset([1]).prompts
    ['b']
    """

    name: str
    prompts: list[str]
    models: list[str]
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray | None = None
    tasks: list[str] | None = None
    ids: list[str] | None = None
    split: str = "all"
    notes: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, k = len(self.prompts), len(self.models)
        if k == 0:
            raise ValueError("models: a replay dataset needs at least one model")
        if len(set(self.models)) != k:
            raise ValueError("models: model ids must be unique")
        for name in ("quality", "cost", "latency"):
            arr = getattr(self, name)
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray) or arr.shape != (n, k):
                raise ValueError(f"{name}: expected an array of shape ({n}, {k})")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: values must be finite")
        if np.any(self.quality < 0.0) or np.any(self.quality > 1.0):
            raise ValueError("quality: values must lie in [0, 1]")
        if np.any(self.cost < 0.0):
            raise ValueError("cost: values must be non-negative")
        for name in ("tasks", "ids"):
            seq = getattr(self, name)
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name}: expected {n} entries")

    @property
    def n(self) -> int:
        """Number of prompts."""
        return len(self.prompts)

    @property
    def k(self) -> int:
        """Number of models."""
        return len(self.models)

    def mean_quality(self) -> np.ndarray:
        """Mean quality of each model over all prompts, shape ``(K,)``."""
        return np.asarray(self.quality.mean(axis=0), dtype=np.float64)

    def mean_cost(self) -> np.ndarray:
        """Mean cost per query of each model, shape ``(K,)``."""
        return np.asarray(self.cost.mean(axis=0), dtype=np.float64)

    def categorical_contexts(self) -> list[dict[str, str]]:
        """Each prompt's categorical context as replay passes it: ``{"task": label}``, or
        ``{}`` for a prompt without a label (every prompt, when the dataset has none).

        >>> ReplayDataset("toy", ["a", "b"], ["m"], np.ones((2, 1)), np.ones((2, 1)),
        ...               tasks=["maths", ""]).categorical_contexts()
        [{'task': 'maths'}, {}]
        """
        return [{"task": t} if t else {} for t in self.tasks or [""] * self.n]

    def subset(self, rows: list[int] | np.ndarray, split: str | None = None) -> ReplayDataset:
        """The dataset restricted to ``rows`` (in that order)."""
        idx = np.asarray(rows, dtype=np.int64)
        return ReplayDataset(
            name=self.name,
            prompts=[self.prompts[i] for i in idx],
            models=list(self.models),
            quality=self.quality[idx],
            cost=self.cost[idx],
            latency=None if self.latency is None else self.latency[idx],
            tasks=None if self.tasks is None else [self.tasks[i] for i in idx],
            ids=None if self.ids is None else [self.ids[i] for i in idx],
            split=self.split if split is None else split,
            notes=dict(self.notes),
        )
