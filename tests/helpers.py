"""Helpers shared by tests: throw-away databases on a real PostgreSQL server."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from service.config import libpq_url, sqlalchemy_url

__all__ = [
    "create_database",
    "database_name",
    "decision_row",
    "drop_database",
    "feedback_row",
    "outcome_row",
    "url_for_database",
]


def url_for_database(url: str, name: str) -> str:
    """Return ``url`` (SQLAlchemy form) pointing at database ``name`` on the same server."""
    return make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)


def database_name(url: str) -> str:
    """Return the database name of ``url``."""
    name = make_url(sqlalchemy_url(url)).database
    if not name:
        raise ValueError(f"URL {url!r} names no database")
    return name


def create_database(server_url: str, prefix: str = "br_test", template: str | None = None) -> str:
    """Create a database with a unique random name (optionally copied from ``template``)
    on ``server_url``'s server and return its SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(statement)
    return url_for_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` on ``server_url``'s server, closing its connections first."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def decision_row(**overrides: Any) -> dict[str, Any]:
    """A complete decision row for :class:`~service.storage.writer.GroupCommitWriter`."""
    from service.storage.ids import decision_created_at, new_decision_id

    decision_id = overrides.pop("decision_id", None) or new_decision_id()
    features = np.arange(4, dtype="<f8") / 3.0
    row: dict[str, Any] = {
        "decision_id": decision_id,
        "created_at": decision_created_at(decision_id),
        "tenant": "",
        "route": "default",
        "request_id": "",
        "unit_id": "",
        "policy_name": "default",
        "policy_version": 1,
        "experiment": "",
        "variant": "",
        "bucket": None,
        "model": "m1",
        "propensity": 0.9,
        "candidates": ["m1", "m2"],
        "scores": [0.5, 0.25],
        "probabilities": [0.9, 0.1],
        "estimated_cost_usd": 0.001,
        "features": features.tobytes(),
        "numeric_context": {"n": 1.5},
        "categorical_context": {"lang": "en"},
        "prompt_hash": hashlib.sha256(b"hello").digest(),
        "prompt": None,
        "shadow": None,
        "logged": True,
    }
    row.update(overrides)
    return row


def outcome_row(decision: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """An outcome row for ``decision`` (a :func:`decision_row`)."""
    row: dict[str, Any] = {
        "decision_id": decision["decision_id"],
        "decision_created_at": decision["created_at"],
        "tenant": None,
        "quality": 0.75,
        "success": True,
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.0005,
        "latency_ms": 420.0,
        "error": "",
        "reward": 0.7,
    }
    row.update(overrides)
    return row


def feedback_row(decision: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A feedback row for ``decision`` (a :func:`decision_row`)."""
    row: dict[str, Any] = {
        "decision_id": decision["decision_id"],
        "decision_created_at": decision["created_at"],
        "tenant": None,
        "feedback_key": "source:user",
        "rating": 1.0,
        "comment": None,
        "source": "user",
    }
    row.update(overrides)
    return row
