"""The one way to a database: :func:`open_database`, engines, and the schema version check.

Every entry point (``banditroute serve``, every CLI command, ``banditroute evaluate``) gets its
database from :func:`open_database`: an external ``database_url`` is checked (migrated only when
asked), the embedded PostgreSQL under ``data_dir`` is started or joined and brought to this
banditroute's schema.

Examples
--------
>>> engine = create_engine("postgresql://u@db.internal/banditroute")
>>> engine.url.drivername
'postgresql+psycopg'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, pool
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.orm import Session, sessionmaker

from banditroute.service.config import Settings, sqlalchemy_url
from banditroute.service.errors import FailedPrecondition, Unavailable
from banditroute.service.storage import migrate
from banditroute.service.storage.embedded import EmbeddedPostgres
from banditroute.service.storage.partitions import ensure_decision_partitions

__all__ = [
    "Database",
    "SchemaMode",
    "check_schema",
    "create_engine",
    "open_database",
    "schema_problem",
    "session_factory",
]

#: What :func:`open_database` does about the schema: ``"check"`` refuses an external database
#: that is not at head (the embedded one is migrated: it belongs to banditroute), ``"migrate"``
#: migrates either, ``"any"`` leaves it as it is (``db upgrade`` and ``db current``).
SchemaMode = Literal["check", "migrate", "any"]


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


@dataclass(frozen=True)
class _Revision:
    current: str | None
    needed: str
    empty: bool

    def newer(self) -> bool:
        if self.current is None or self.current == self.needed:
            return False
        script = ScriptDirectory.from_config(migrate.alembic_config())
        return self.current not in {rev.revision for rev in script.walk_revisions()}


def _revision(engine: Engine) -> _Revision:
    needed = migrate.head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            empty = current is None and not inspect(conn).get_table_names()
    except Exception as exc:
        raise Unavailable(f"cannot reach the database: {type(exc).__name__}: {exc}") from exc
    return _Revision(current, needed, empty)


def _problem(rev: _Revision) -> str | None:
    if rev.current == rev.needed:
        return None
    if rev.newer():
        return (
            f"database schema is at {rev.current}, newer than this banditroute (needs "
            f"{rev.needed}): upgrade banditroute to a version that knows this schema"
        )
    at = rev.current or ("none (empty database)" if rev.empty else "none (tables without Alembic)")
    fix = "run `banditroute db upgrade`"
    return f"database schema is at {at}, this banditroute needs {rev.needed}: {fix}"


def schema_problem(engine: Engine) -> str | None:
    """Return why the database's schema does not match this banditroute, or ``None`` if it does.

    Raises
    ------
    Unavailable
        When the database cannot be reached.
    """
    return _problem(_revision(engine))


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


@dataclass
class Database:
    """An open database: its URL and, for the embedded PostgreSQL, this process's handle on it.

    :meth:`close` (or leaving the ``with`` block) releases the handle; the embedded server stops
    when no other process (a running ``serve``) holds one.
    """

    url: str
    embedded: EmbeddedPostgres | None = None

    def close(self) -> None:
        """Release the embedded server (nothing for an external database); safe to call twice."""
        if self.embedded is not None:
            embedded, self.embedded = self.embedded, None
            embedded.stop()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_database(
    settings: Settings, *, schema: SchemaMode = "check", partitions: bool = False
) -> Database:
    """Open the database ``settings`` name, ready for this banditroute.

    With ``database_url`` set, that database; otherwise the embedded PostgreSQL under
    ``data_dir``, started, or joined when another process (``serve``) runs it.

    Parameters
    ----------
    settings
        ``database_url``, ``data_dir`` and ``db_connect_timeout_s`` are used.
    schema
        ``"check"``: an external database must be at this banditroute's schema (it is migrated
        only by ``banditroute db upgrade`` or ``serve --migrate``); the embedded one is migrated
        when behind. ``"migrate"``: migrate either to head. ``"any"``: no check.
    partitions
        Also create the current and the next month's ``decisions`` partitions (``serve``).

    Raises
    ------
    FailedPrecondition
        The schema is not this banditroute's (the message names the fix), or the data dir is
        unusable.
    Unavailable
        The database cannot be reached or the embedded server cannot start.
    """
    embedded = None
    if settings.database_url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        url = embedded.start()
    else:
        url = sqlalchemy_url(settings.database_url)
    database = Database(url, embedded)
    try:
        if schema != "any":
            _prepare(database, settings, migrate_db=schema == "migrate" or embedded is not None)
        if partitions:
            _ensure_partitions(url, settings.db_connect_timeout_s)
    except BaseException:
        database.close()
        raise
    return database


def _engine(url: str, connect_timeout_s: float) -> Engine:
    return sa_create_engine(
        sqlalchemy_url(url),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
    )


def _prepare(database: Database, settings: Settings, *, migrate_db: bool) -> None:
    engine = _engine(database.url, settings.db_connect_timeout_s)
    try:
        rev = _revision(engine)
        if rev.current == rev.needed:
            return
        if migrate_db and not rev.newer():
            migrate.upgrade(database.url)
            rev = _revision(engine)
        problem = _problem(rev)
        if problem is not None:
            raise FailedPrecondition(problem)
    finally:
        engine.dispose()


def _ensure_partitions(url: str, connect_timeout_s: float) -> None:
    engine = _engine(url, connect_timeout_s)
    try:
        with engine.begin() as conn:
            ensure_decision_partitions(conn)
    finally:
        engine.dispose()
