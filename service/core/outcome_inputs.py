"""What RecordOutcome(s) and SubmitFeedback take and answer, and the checks on them.

The inputs and results of :class:`~banditroute.service.core.outcomes.OutcomeCore`, the decision
as it is joined from storage, the storage and recent-decision interfaces it needs, and the field
validation (``InvalidArgument`` naming the field).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from banditroute.service.core.assignment import PolicyKey
from banditroute.service.errors import InvalidArgument
from banditroute.service.storage.writer import WriteResult

__all__ = [
    "FeedbackInput",
    "FeedbackResult",
    "OutcomeInput",
    "OutcomeResult",
    "OutcomeStore",
    "RecentDecisions",
    "StoredDecision",
    "validate_outcome",
]

MAX_TEXT = 4096
MAX_SOURCE = 256


@dataclass(slots=True)
class OutcomeInput:
    """One RecordOutcome item, in plain Python."""

    decision_id: str
    quality: float | None = None
    success: bool | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    error: str = ""


@dataclass(slots=True)
class OutcomeResult:
    """Result of one outcome: OK (``code`` "OK") or the error that rejected it."""

    decision_id: str
    code: str = "OK"
    message: str = ""
    reward: float = 0.0
    event_id: int = 0
    duplicate: bool = False


@dataclass(slots=True)
class FeedbackInput:
    """A SubmitFeedback call, in plain Python."""

    decision_id: str
    rating: float
    comment: str | None = None
    source: str = ""
    feedback_id: str = ""


@dataclass(slots=True)
class FeedbackResult:
    """Result of SubmitFeedback."""

    reward: float
    event_id: int
    duplicate: bool = False


@dataclass(slots=True)
class StoredDecision:
    """What the outcome path needs to know about a logged decision."""

    decision_id: uuid.UUID
    created_at: datetime
    tenant: str
    model: str
    policy: PolicyKey
    estimated_cost_usd: float
    #: The stored outcome row (as a dict) if there is one.
    outcome: dict[str, Any] | None = None
    #: Stored feedback: feedback_key -> row dict.
    feedback: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The decision's route and experiment variant (metric labels).
    route: str = ""
    variant: str = ""


class RecentDecisions(Protocol):
    """Decisions this process answered recently
    (:class:`~banditroute.service.core.decision_buffer.BufferedDecisionStore`)."""

    def recent(self, decision_id: uuid.UUID) -> tuple[Any, ...] | None:
        """``(created_at, tenant, model, policy_name, policy_version, estimated_cost_usd,
        route, variant)``, or None."""
        ...

    def forget_recent(self, decision_id: uuid.UUID) -> None:
        """Answer None for ``decision_id`` from now on."""
        ...


class OutcomeStore(Protocol):
    """Reads decisions and writes outcome/feedback events (answering after commit)."""

    async def load_decisions(
        self, keys: Sequence[tuple[uuid.UUID, datetime]]
    ) -> dict[uuid.UUID, StoredDecision]:
        """Decisions by id, with their stored outcome and feedback."""
        ...

    async def write_outcomes(self, rows: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """Insert outcome rows, re-checked in the write transaction; a result per row."""
        ...

    async def write_feedback(self, row: dict[str, Any]) -> WriteResult:
        """Insert a feedback row, re-checked in the write transaction."""
        ...


def opt_float(
    name: str, value: float | None, low: float = 0.0, high: float | None = None
) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{name} must be a finite number")
    if v < low or (high is not None and v > high):
        bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise InvalidArgument(f"{name} must be {bounds}, got {v:g}")
    return v


def _opt_tokens(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise InvalidArgument(f"{name} must be >= 0, got {value}")
    if value > 1 << 40:
        raise InvalidArgument(f"{name} is implausibly large")
    return int(value)


def validate_outcome(item: OutcomeInput) -> OutcomeInput:
    """Check an outcome's fields (``InvalidArgument`` naming the field)."""
    quality = opt_float("quality", item.quality, 0.0, 1.0)
    if quality is None and item.success is None and not item.error:
        raise InvalidArgument("an outcome needs quality, success or error")
    if len(item.error) > MAX_TEXT:
        raise InvalidArgument(f"error is longer than {MAX_TEXT} characters")
    return OutcomeInput(
        decision_id=item.decision_id,
        quality=quality,
        success=item.success,
        input_tokens=_opt_tokens("input_tokens", item.input_tokens),
        output_tokens=_opt_tokens("output_tokens", item.output_tokens),
        cost_usd=opt_float("cost_usd", item.cost_usd),
        latency_ms=opt_float("latency_ms", item.latency_ms),
        error=item.error,
    )


def same_outcome(stored: dict[str, Any], row: dict[str, Any]) -> bool:
    for key in ("quality", "success", "input_tokens", "output_tokens", "latency_ms", "error"):
        if stored.get(key) != row.get(key):
            return False
    a, b = stored.get("cost_usd"), row.get("cost_usd")
    return a == b or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))
