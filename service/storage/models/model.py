"""``models``: the pool of LLMs a route may choose from, with their prices."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, String, text
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, TimestampedMixin

__all__ = ["Model"]


class Model(TimestampedMixin, Base):
    """One model of the pool; prices in USD per one million tokens."""

    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint("input_usd_per_mtok >= 0", name="input_price_nonnegative"),
        CheckConstraint("output_usd_per_mtok >= 0", name="output_price_nonnegative"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    provider: Mapped[str] = mapped_column(String, server_default="")
    input_usd_per_mtok: Mapped[float]
    output_usd_per_mtok: Mapped[float]
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
