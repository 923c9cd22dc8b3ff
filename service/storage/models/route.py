"""``routes``: named use cases, each served by a policy over a set of models."""

from __future__ import annotations

from sqlalchemy import String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from banditroute.service.storage.models.base import Base, TimestampedMixin

__all__ = ["Route"]


class Route(TimestampedMixin, Base):
    """A route of a tenant (``""`` = shared); ``policy_version`` 0 follows the latest version."""

    __tablename__ = "routes"

    tenant: Mapped[str] = mapped_column(String, primary_key=True, server_default="")
    name: Mapped[str] = mapped_column(String, primary_key=True)
    policy_name: Mapped[str] = mapped_column(String)
    policy_version: Mapped[int] = mapped_column(server_default=text("0"))
    models: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'::text[]"))
    #: Money budgets (issue #12; see ``banditroute.learners.pacing``): None = no budget.
    budget_per_request_usd: Mapped[float | None]
    budget_usd: Mapped[float | None]
    #: ``hour``, ``day`` or ``month`` (with ``budget_usd``).
    budget_period: Mapped[str | None] = mapped_column(String)
    budget_hard_cap: Mapped[bool] = mapped_column(server_default=text("false"))
