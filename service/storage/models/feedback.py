"""``feedback``: human ratings of decisions, events of the log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base

__all__ = ["Feedback"]


class Feedback(Base):
    """A rating in [0, 1]; ``feedback_key`` is the client's feedback id or ``source:<source>``."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("decision_id", "feedback_key"),
        Index(None, "decision_created_at", postgresql_using="brin"),
    )

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    decision_id: Mapped[uuid.UUID]
    decision_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tenant: Mapped[str] = mapped_column(String)
    feedback_key: Mapped[str] = mapped_column(String)
    rating: Mapped[float]
    comment: Mapped[str | None]
    source: Mapped[str] = mapped_column(String, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
