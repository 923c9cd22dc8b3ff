"""``experiment_events``: append-only audit log of every change to an experiment."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, CreatedAtMixin

__all__ = ["ExperimentEvent"]


class ExperimentEvent(CreatedAtMixin, Base):
    """Who (``actor``) did what (``action`` plus ``detail``) to which experiment, and when.

    Actions: ``create``, ``start``, ``pause``, ``resume``, ``stop``, ``ramp``, ``promote``,
    ``rollback``, ``guardrail_stop``.
    """

    __tablename__ = "experiment_events"
    __table_args__ = (Index("ix_experiment_events_experiment_id_id", "experiment_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("experiments.id", ondelete="CASCADE")
    )
    action: Mapped[str] = mapped_column(String)
    actor: Mapped[str] = mapped_column(String, server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
