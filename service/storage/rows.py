"""Rows that cross into the event log: the one definition of their columns.

:class:`DecisionRow` is the decision row Route builds and the group-commit writer stores; the
writer's :data:`DECISION_COLUMNS` are its fields, in order (they equal the ``decisions`` table's
columns less ``event_id``, which the writer assigns). A ``DecisionRow`` also reads as a mapping
(``row["model"]``, ``{**row}``), so code that keeps rows as dicts (the outage buffer, tests) needs
no conversion; the writer accepts either and turns a mapping into a ``DecisionRow`` once.

Outcome and feedback rows stay mappings: :data:`OUTCOME_COLUMNS` and :data:`FEEDBACK_COLUMNS`
are the fields that make two of them identical (the duplicate/conflict check).

Examples
--------
>>> import uuid, datetime
>>> row = DecisionRow.from_mapping({
...     "decision_id": uuid.UUID(int=1), "created_at": datetime.datetime(2026, 1, 1),
...     "route": "default", "policy_name": "p", "policy_version": 1, "model": "a",
...     "propensity": 1.0, "candidates": ["a"], "scores": [0.0], "probabilities": [1.0],
...     "estimated_cost_usd": 0.0, "features": b"", "prompt_hash": b"", "unknown": 1})
>>> row["model"], row.tenant, row.logged, len(row) == len(DECISION_COLUMNS)
('a', '', True, True)
>>> DecisionRow.from_mapping({"model": "a"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: decision row misses columns ['decision_id', 'created_at', 'route', ...
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "DECISION_COLUMNS",
    "FEEDBACK_COLUMNS",
    "FEEDBACK_REQUIRED",
    "OUTCOME_COLUMNS",
    "OUTCOME_REQUIRED",
    "DecisionRow",
    "checked_row",
]


@dataclass(slots=True, kw_only=True)
class DecisionRow(Mapping[str, Any]):
    """One decision as stored in ``decisions`` (``event_id`` aside: the writer assigns it)."""

    decision_id: uuid.UUID
    #: Millisecond precision: the UUIDv7 ``decision_id`` encodes it (the partition key).
    created_at: datetime
    tenant: str = ""
    route: str
    #: The caller's idempotency key ("" = none).
    request_id: str = ""
    unit_id: str = ""
    policy_name: str
    policy_version: int
    experiment: str = ""
    variant: str = ""
    bucket: int | None = None
    model: str
    propensity: float
    #: The ranking, best first (the chosen model first).
    candidates: Sequence[str]
    scores: Sequence[float]
    probabilities: Sequence[float]
    estimated_cost_usd: float
    #: Feature vector as raw little-endian float64.
    features: bytes
    numeric_context: dict[str, Any] = field(default_factory=dict)
    categorical_context: dict[str, Any] = field(default_factory=dict)
    prompt_hash: bytes
    prompt: str | None = None
    #: Shadow variants' choices, ``{"name@version": {...}}``.
    shadow: dict[str, Any] | None = None
    #: False for a row written late from the outage buffer.
    logged: bool = True
    #: The budget controller's cost weight (USD^-1) the decision used (0: no budget).
    pacing_cost_weight: float = 0.0
    #: "" when the policy's choice stood, "pacing" or "cap" when the budget changed it.
    pacing: str = ""

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> DecisionRow:
        """A row from a mapping of its columns (defaults fill the optional ones; other keys
        are ignored). Raises ``ValueError`` naming the missing required columns."""
        if isinstance(row, DecisionRow):
            return row
        missing = [c for c in _REQUIRED if c not in row]
        if missing:
            raise ValueError(f"decision row misses columns {missing}")
        return cls(**{c: row[c] for c in DECISION_COLUMNS if c in row})

    # -- read as a mapping of its columns --------------------------------------------------
    def __getitem__(self, column: str) -> Any:
        if column not in _COLUMN_SET:
            raise KeyError(column)
        return getattr(self, column)

    def __iter__(self) -> Iterator[str]:
        return iter(DECISION_COLUMNS)

    def __len__(self) -> int:
        return len(DECISION_COLUMNS)


#: Columns of a decision row, in table order (``event_id`` is assigned by the writer).
DECISION_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(DecisionRow))
_COLUMN_SET = frozenset(DECISION_COLUMNS)
_REQUIRED = tuple(
    f.name for f in fields(DecisionRow) if f.default is MISSING and f.default_factory is MISSING
)

#: Fields of an outcome row that make two outcomes "identical".
OUTCOME_COLUMNS = (
    "quality",
    "success",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "error",
)
#: Fields of a feedback row that make two pieces of feedback "identical".
FEEDBACK_COLUMNS = ("rating", "comment", "source")
OUTCOME_REQUIRED = ("decision_id", "decision_created_at", "reward")
FEEDBACK_REQUIRED = ("decision_id", "decision_created_at", "feedback_key", "rating")


def checked_row(row: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    """A copy of an outcome or feedback ``row``; ``ValueError`` when a required field is None.

    >>> checked_row({"a": 1, "b": None}, ("a", "b"))
    Traceback (most recent call last):
    ...
    ValueError: row misses ['b']
    """
    missing = [c for c in required if row.get(c) is None]
    if missing:
        raise ValueError(f"row misses {missing}")
    return dict(row)
