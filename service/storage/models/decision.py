"""``decisions``: every Route answer, partitioned by month of ``created_at``.

``decision_id`` is a UUIDv7 whose millisecond timestamp equals ``created_at``, so a decision id
alone finds its partition. Monthly partitions are created ahead by ``banditroute db maintain``
(a DEFAULT partition catches anything else) and old ones dropped by its ``--retention-days``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base

__all__ = ["Decision"]


class Decision(Base):
    """A logged decision: context features, candidates, scores, chosen model, propensity."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index(None, "event_id"),
        # Added by 0002_experiments: live experiment statistics without scanning every decision.
        Index(
            "ix_decisions_experiment_variant",
            "experiment",
            "variant",
            postgresql_where=text("experiment <> ''"),
        ),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    decision_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    tenant: Mapped[str] = mapped_column(String)
    route: Mapped[str] = mapped_column(String)
    request_id: Mapped[str] = mapped_column(String, server_default="")
    unit_id: Mapped[str] = mapped_column(String, server_default="")
    policy_name: Mapped[str] = mapped_column(String)
    policy_version: Mapped[int]
    experiment: Mapped[str] = mapped_column(String, server_default="")
    variant: Mapped[str] = mapped_column(String, server_default="")
    bucket: Mapped[int | None]
    model: Mapped[str] = mapped_column(String)
    propensity: Mapped[float]
    candidates: Mapped[list[str]] = mapped_column(ARRAY(String))
    scores: Mapped[list[float]] = mapped_column(ARRAY(DOUBLE_PRECISION))
    probabilities: Mapped[list[float]] = mapped_column(ARRAY(DOUBLE_PRECISION))
    estimated_cost_usd: Mapped[float]
    #: Feature vector as raw little-endian float64 (exact round trip).
    features: Mapped[bytes] = mapped_column(LargeBinary)
    numeric_context: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    categorical_context: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    prompt_hash: Mapped[bytes] = mapped_column(LargeBinary)
    prompt: Mapped[str | None]
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    logged: Mapped[bool] = mapped_column(server_default=text("true"))
    #: The budget controller's cost weight (USD^-1) this decision used; 0 without a budget.
    pacing_cost_weight: Mapped[float] = mapped_column(server_default=text("0"))
    #: "" when the policy's choice stood, "pacing" or "cap" when the budget changed it.
    pacing: Mapped[str] = mapped_column(String, server_default="")
