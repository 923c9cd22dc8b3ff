"""Helpers shared by tests: throw-away databases on a real PostgreSQL server."""

from __future__ import annotations

import secrets

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from service.config import libpq_url, sqlalchemy_url

__all__ = ["create_database", "database_name", "drop_database", "url_for_database"]


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
