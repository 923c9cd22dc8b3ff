"""``config_changes``: audit log of admin changes; its largest id is the config version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Identity, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, CreatedAtMixin

__all__ = ["CONFIG_CHANNEL", "ConfigChange"]

#: NOTIFY channel announcing a new config version (payload: the new version).
CONFIG_CHANNEL = "banditroute_config"


class ConfigChange(CreatedAtMixin, Base):
    """One admin change; every process reloads models, policies and routes when
    ``max(id)`` grows (woken by NOTIFY on :data:`CONFIG_CHANNEL`, polling as fallback)."""

    __tablename__ = "config_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entity: Mapped[str] = mapped_column(String)
    key: Mapped[str] = mapped_column(String)
    action: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String, server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
