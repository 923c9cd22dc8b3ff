"""``api_keys``: per-tenant Router keys; only a SHA-256 hash of each key is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, CreatedAtMixin

__all__ = ["ApiKey"]


class ApiKey(CreatedAtMixin, Base):
    """An API key: ``key_hash`` is ``sha256(key)``; the raw key is shown once and never stored."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String, primary_key=True)
    tenant: Mapped[str] = mapped_column(String)
    label: Mapped[str] = mapped_column(String, server_default="")
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
