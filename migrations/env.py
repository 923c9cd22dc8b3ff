"""Alembic environment: URL and options from ``banditroute.service.storage.migrate`` or the
settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

from banditroute.service.storage.migrate import include_object
from banditroute.service.storage.models import EVENT_LOG_LOCK_KEY, Base

config = context.config
target_metadata = Base.metadata
# Serialises concurrent `db upgrade` runs (several replicas starting with --migrate).
_MIGRATION_LOCK_KEY = EVENT_LOG_LOCK_KEY + 1


def _url() -> str:
    url = config.attributes.get("url")
    if url is None:
        from banditroute.service.config import load_settings

        url = load_settings().sqlalchemy_url
    return str(url)


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        include_object=include_object,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``)."""
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on a live connection, holding an advisory lock for the transaction."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
