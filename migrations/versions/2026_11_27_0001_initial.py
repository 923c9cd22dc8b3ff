"""Initial schema: model pool, policies, routes, API keys, the event log and snapshots.

Decisions, outcomes and feedback share the ``event_ids`` sequence (see
``banditroute.service.storage.models.event_log``); ``decisions`` is partitioned by month of
``created_at`` with a DEFAULT partition here and monthly ones from ``banditroute db maintain``.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27 21:18:03.369937+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("event_ids", data_type=sa.BigInteger())))
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("label", sa.String(), server_default="", nullable=False),
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "config_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), server_default="", nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_changes")),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), server_default="", nullable=False),
        sa.Column("unit_id", sa.String(), server_default="", nullable=False),
        sa.Column("policy_name", sa.String(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("experiment", sa.String(), server_default="", nullable=False),
        sa.Column("variant", sa.String(), server_default="", nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("propensity", sa.Double(), nullable=False),
        sa.Column("candidates", postgresql.ARRAY(sa.String()), nullable=False),
        sa.Column("scores", postgresql.ARRAY(sa.DOUBLE_PRECISION()), nullable=False),
        sa.Column("probabilities", postgresql.ARRAY(sa.DOUBLE_PRECISION()), nullable=False),
        sa.Column("estimated_cost_usd", sa.Double(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=False),
        sa.Column(
            "numeric_context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "categorical_context",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("prompt_hash", sa.LargeBinary(), nullable=False),
        sa.Column("prompt", sa.String(), nullable=True),
        sa.Column("shadow", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("logged", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "created_at", name=op.f("pk_decisions")),
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(op.f("ix_decisions_event_id"), "decisions", ["event_id"], unique=False)
    op.execute("CREATE TABLE decisions_default PARTITION OF decisions DEFAULT")
    op.create_table(
        "feedback",
        sa.Column("event_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("decision_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("feedback_key", sa.String(), nullable=False),
        sa.Column("rating", sa.Double(), nullable=False),
        sa.Column("comment", sa.String(), nullable=True),
        sa.Column("source", sa.String(), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_feedback")),
        sa.UniqueConstraint(
            "decision_id", "feedback_key", name=op.f("uq_feedback_decision_id_feedback_key")
        ),
    )
    op.create_index(
        op.f("ix_feedback_decision_created_at"),
        "feedback",
        ["decision_created_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), server_default="", nullable=False),
        sa.Column("input_usd_per_mtok", sa.Double(), nullable=False),
        sa.Column("output_usd_per_mtok", sa.Double(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "input_usd_per_mtok >= 0", name=op.f("ck_models_input_price_nonnegative")
        ),
        sa.CheckConstraint(
            "output_usd_per_mtok >= 0", name=op.f("ck_models_output_price_nonnegative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    op.create_table(
        "outcomes",
        sa.Column("event_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("decision_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("quality", sa.Double(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("error", sa.String(), server_default="", nullable=False),
        sa.Column("reward", sa.Double(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_outcomes_decision_id")),
    )
    op.create_index(
        op.f("ix_outcomes_decision_created_at"),
        "outcomes",
        ["decision_created_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("algorithm", sa.String(), nullable=False),
        sa.Column(
            "hyperparameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("cost_weight", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_weight", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("feedback_weight", sa.Double(), server_default=sa.text("0.5"), nullable=False),
        sa.Column("seed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_policies_name_version")),
    )
    op.create_table(
        "policy_snapshots",
        sa.Column("policy_name", sa.String(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "policy_name", "policy_version", "last_event_id", name=op.f("pk_policy_snapshots")
        ),
    )
    op.create_table(
        "request_ids",
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "request_id", name=op.f("pk_request_ids")),
    )
    op.create_table(
        "routes",
        sa.Column("tenant", sa.String(), server_default="", nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("policy_name", sa.String(), nullable=False),
        sa.Column("policy_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "models",
            postgresql.ARRAY(sa.String()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant", "name", name=op.f("pk_routes")),
    )


def downgrade() -> None:
    op.drop_table("routes")
    op.drop_table("request_ids")
    op.drop_table("policy_snapshots")
    op.drop_table("policies")
    op.drop_index(
        op.f("ix_outcomes_decision_created_at"), table_name="outcomes", postgresql_using="brin"
    )
    op.drop_table("outcomes")
    op.drop_table("models")
    op.drop_index(
        op.f("ix_feedback_decision_created_at"), table_name="feedback", postgresql_using="brin"
    )
    op.drop_table("feedback")
    op.drop_index(op.f("ix_decisions_event_id"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("config_changes")
    op.drop_table("api_keys")
    op.execute(sa.schema.DropSequence(sa.Sequence("event_ids")))
