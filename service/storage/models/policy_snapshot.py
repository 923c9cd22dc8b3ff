"""``policy_snapshots``: serialized learned state of a policy version at an event id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base

__all__ = ["PolicySnapshot"]


class PolicySnapshot(Base):
    """``state`` (``banditroute.learners.state.dumps``) after applying every event up to
    ``last_event_id``."""

    __tablename__ = "policy_snapshots"

    policy_name: Mapped[str] = mapped_column(String, primary_key=True)
    policy_version: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
