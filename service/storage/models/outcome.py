"""``outcomes``: at most one outcome per decision, an event of the log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base

__all__ = ["Outcome"]


class Outcome(Base):
    """How the chosen model did; ``reward`` as computed when it was recorded."""

    __tablename__ = "outcomes"
    __table_args__ = (Index(None, "decision_created_at", postgresql_using="brin"),)

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    decision_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    decision_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str] = mapped_column(String)
    quality: Mapped[float | None]
    success: Mapped[bool | None]
    input_tokens: Mapped[int | None] = mapped_column(BigInteger)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger)
    cost_usd: Mapped[float | None]
    latency_ms: Mapped[float | None]
    error: Mapped[str] = mapped_column(server_default="")
    reward: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
