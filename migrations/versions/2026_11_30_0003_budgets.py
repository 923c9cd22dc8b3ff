"""budgets: per-route money budgets and the pacing each decision used (issue #12).

``routes`` gains ``budget_per_request_usd``, ``budget_usd``, ``budget_period`` and
``budget_hard_cap``; ``decisions`` gains ``pacing_cost_weight`` (the controller's cost weight,
USD^-1, the decision used; 0 when the route has no budget) and ``pacing`` ("" when the policy's
choice stood, "pacing" or "cap" when the budget changed it).

Revision ID: 0003_budgets
Revises: 0002_experiments
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_budgets"
down_revision = "0002_experiments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("routes", sa.Column("budget_per_request_usd", sa.Float(), nullable=True))
    op.add_column("routes", sa.Column("budget_usd", sa.Float(), nullable=True))
    op.add_column("routes", sa.Column("budget_period", sa.String(), nullable=True))
    op.add_column(
        "routes",
        sa.Column("budget_hard_cap", sa.Boolean(), server_default=sa.text("false"),
                  nullable=False),
    )
    op.add_column(
        "decisions",
        sa.Column("pacing_cost_weight", sa.Float(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "decisions", sa.Column("pacing", sa.String(), server_default="", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("decisions", "pacing")
    op.drop_column("decisions", "pacing_cost_weight")
    op.drop_column("routes", "budget_hard_cap")
    op.drop_column("routes", "budget_period")
    op.drop_column("routes", "budget_usd")
    op.drop_column("routes", "budget_per_request_usd")
