"""experiments: A/B rollouts (experiments, experiment_variants, experiment_events).

Also indexes ``decisions`` by experiment and variant (partial: only rows in an experiment), so
the live statistics of an experiment do not scan every decision.

Revision ID: 0002_experiments
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_experiments"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), server_default="", nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("state", sa.String(), server_default="draft", nullable=False),
        sa.Column("salt", sa.String(), nullable=False),
        sa.Column(
            "guardrail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "allocation",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("previous_policy_name", sa.String(), nullable=True),
        sa.Column("previous_policy_version", sa.Integer(), nullable=True),
        sa.Column("promoted_variant", sa.String(), server_default="", nullable=False),
        sa.Column("stop_reason", sa.String(), server_default="", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
        sa.CheckConstraint(
            "state IN ('draft', 'running', 'paused', 'stopped')", name=op.f("ck_experiments_state")
        ),
    )
    op.create_index(
        "uq_experiments_active_route",
        "experiments",
        ["tenant", "route"],
        unique=True,
        postgresql_where=sa.text("state IN ('running', 'paused')"),
    )
    op.create_table(
        "experiment_variants",
        sa.Column("experiment_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("policy_name", sa.String(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("shadow", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("control", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("stopped", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("stop_reason", sa.String(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_variants_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "name", name=op.f("pk_experiment_variants")),
    )
    op.create_table(
        "experiment_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("experiment_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), server_default="", nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_events_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_events")),
    )
    op.create_index(
        op.f("ix_experiment_events_experiment_id_id"),
        "experiment_events",
        ["experiment_id", "id"],
    )
    op.create_index(
        "ix_decisions_experiment_variant",
        "decisions",
        ["experiment", "variant"],
        postgresql_where=sa.text("experiment <> ''"),
    )


def downgrade() -> None:
    op.drop_index("ix_decisions_experiment_variant", table_name="decisions")
    op.drop_index(op.f("ix_experiment_events_experiment_id_id"), table_name="experiment_events")
    op.drop_table("experiment_events")
    op.drop_table("experiment_variants")
    op.drop_index("uq_experiments_active_route", table_name="experiments")
    op.drop_table("experiments")
