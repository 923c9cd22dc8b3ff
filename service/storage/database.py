"""SQLAlchemy engine and session factories, and the schema version check.

Examples
--------
>>> engine = create_engine("postgresql://u@db.internal/banditroute")
>>> engine.url.drivername
'postgresql+psycopg'
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.orm import Session, sessionmaker

from banditroute.service.config import sqlalchemy_url
from banditroute.service.errors import FailedPrecondition, Unavailable

__all__ = ["check_schema", "create_engine", "schema_problem", "session_factory"]


def create_engine(url: str, *, pool_size: int = 5, connect_timeout_s: float = 5.0) -> Engine:
    """Return a pooled SQLAlchemy engine (psycopg 3) for ``url`` (any PostgreSQL URL form)."""
    return sa_create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory; objects stay usable after commit (``expire_on_commit=False``)."""
    return sessionmaker(engine, expire_on_commit=False)


def schema_problem(engine: Engine) -> str | None:
    """Return why the database's schema does not match this banditroute, or ``None`` if it does.

    Raises
    ------
    Unavailable
        When the database cannot be reached.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from banditroute.service.storage.migrate import alembic_config, head

    needed = head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            empty = current is None and not inspect(conn).get_table_names()
    except Exception as exc:
        raise Unavailable(f"cannot reach the database: {type(exc).__name__}: {exc}") from exc
    if current == needed:
        return None
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        return (
            f"database schema is at {current}, newer than this banditroute (needs {needed}): "
            "upgrade banditroute to a version that knows this schema"
        )
    at = current or ("none (empty database)" if empty else "none (tables without Alembic)")
    fix = "run `banditroute db upgrade`"
    return f"database schema is at {at}, this banditroute needs {needed}: {fix}"


def check_schema(engine: Engine) -> None:
    """Raise :class:`FailedPrecondition` unless the schema is exactly at this banditroute's head.

    Raises
    ------
    FailedPrecondition
        For an unmigrated, older or newer schema, with the command that fixes it.
    Unavailable
        When the database cannot be reached.
    """
    problem = schema_problem(engine)
    if problem is not None:
        raise FailedPrecondition(problem)
