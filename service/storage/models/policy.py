"""``policies``: versioned bandit policy definitions (algorithm, hyperparameters, reward)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Identity, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, CreatedAtMixin

__all__ = ["Policy"]


class Policy(CreatedAtMixin, Base):
    """One immutable version of a named policy; ``put_policy`` adds the next version."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String)
    version: Mapped[int]
    algorithm: Mapped[str] = mapped_column(String)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    cost_weight: Mapped[float] = mapped_column(server_default=text("0"))
    latency_weight: Mapped[float] = mapped_column(server_default=text("0"))
    feedback_weight: Mapped[float] = mapped_column(server_default=text("0.5"))
    seed: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
