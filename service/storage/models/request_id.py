"""``request_ids``: idempotency keys of Route, one decision per ``(tenant, request_id)``."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base

__all__ = ["RequestId"]


class RequestId(Base):
    """Maps a client's request id to the decision made for it."""

    __tablename__ = "request_ids"

    tenant: Mapped[str] = mapped_column(String, primary_key=True)
    request_id: Mapped[str] = mapped_column(String, primary_key=True)
    decision_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
