"""``experiment_variants``: the policy versions an experiment compares, with traffic weights."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base

__all__ = ["ExperimentVariant"]


class ExperimentVariant(Base):
    """One variant: ``policy_version`` is resolved at creation (never 0), so promotion points the
    route at exactly the version whose learned state the registry holds."""

    __tablename__ = "experiment_variants"

    experiment_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String, primary_key=True)
    position: Mapped[int]
    policy_name: Mapped[str] = mapped_column(String)
    policy_version: Mapped[int]
    weight: Mapped[float] = mapped_column(server_default=text("0"))
    shadow: Mapped[bool] = mapped_column(server_default=text("false"))
    control: Mapped[bool] = mapped_column(server_default=text("false"))
    stopped: Mapped[bool] = mapped_column(server_default=text("false"))
    stop_reason: Mapped[str] = mapped_column(String, server_default="")
