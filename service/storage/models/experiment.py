"""``experiments``: A/B rollouts of policies on a route (state, salt, bucket allocation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, TimestampedMixin

__all__ = ["ACTIVE_STATES", "EXPERIMENT_STATES", "Experiment"]

#: Lifecycle states (``draft -> running <-> paused -> stopped``).
EXPERIMENT_STATES = ("draft", "running", "paused", "stopped")
#: States that hold the route: at most one experiment per route is in one of them.
ACTIVE_STATES = ("running", "paused")


class Experiment(TimestampedMixin, Base):
    """An experiment on ``(tenant, route)``; its variants and audit events refer to ``id``.

    ``allocation`` is the bucket layout (``[[start, end, variant], ...]``, see
    :mod:`banditroute.service.experiments.assignment`); ``previous_policy_*`` is the route's policy
    when the experiment started, restored by a rollback.
    """

    __tablename__ = "experiments"
    __table_args__ = (
        Index(
            "uq_experiments_active_route",
            "tenant",
            "route",
            unique=True,
            postgresql_where=text("state IN ('running', 'paused')"),
        ),
        CheckConstraint("state IN ('draft', 'running', 'paused', 'stopped')", name="state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    tenant: Mapped[str] = mapped_column(String, server_default="")
    route: Mapped[str] = mapped_column(String)
    state: Mapped[str] = mapped_column(String, server_default="draft")
    salt: Mapped[str] = mapped_column(String)
    guardrail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    allocation: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    previous_policy_name: Mapped[str | None] = mapped_column(String)
    previous_policy_version: Mapped[int | None]
    promoted_variant: Mapped[str] = mapped_column(String, server_default="")
    stop_reason: Mapped[str] = mapped_column(String, server_default="")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
