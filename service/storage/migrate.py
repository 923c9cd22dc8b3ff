"""Run Alembic programmatically: no ``alembic.ini`` needed, migrations ship in the package.

Examples
--------
>>> head()[:4].isdigit() and head()[4] == "_"  # e.g. '0002_experiments'
True
>>> alembic_config("postgresql://u@h/d").get_main_option("script_location").endswith("migrations")
True
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from banditroute import migrations
from banditroute.service.config import sqlalchemy_url

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current",
    "downgrade",
    "head",
    "include_object",
    "revision",
    "upgrade",
]

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
# Alembic logs every step at INFO ("Context impl PostgresqlImpl.", "Running upgrade ..."); the
# commands print what changed themselves, so keep it for debugging only.
logging.getLogger("alembic").setLevel(logging.WARNING)


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Return an Alembic ``Config`` for the packaged migrations and ``url`` (or a connection).

    The URL travels in ``config.attributes`` (not the ini options), so ``%`` in passwords is safe.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s")
    cfg.set_main_option("timezone", "UTC")
    hooks = cfg.set_section_option
    hooks("post_write_hooks", "hooks", "ruff_fix, ruff_format")
    for name, options in (("ruff_fix", "check --fix --quiet"), ("ruff_format", "format --quiet")):
        hooks("post_write_hooks", f"{name}.type", "exec")
        hooks("post_write_hooks", f"{name}.executable", "ruff")
        hooks("post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME")
    if url is not None:
        cfg.attributes["url"] = sqlalchemy_url(url)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: monthly ``decisions_*`` partitions belong to ``db maintain``, not to the
    schema diff."""
    return not (type_ == "table" and name is not None and name.startswith("decisions_"))


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``, then create decision partitions."""
    command.upgrade(alembic_config(url), revision)
    if revision == "head":
        from banditroute.service.storage.partitions import ensure_decision_partitions

        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        try:
            with engine.begin() as conn:
                ensure_decision_partitions(conn)
        finally:
            engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` empties it)."""
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """Return the revision the database at ``url`` is at (``None`` when never migrated)."""
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    """Return the newest revision this banditroute ships."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one chain, found heads {heads}")
    return heads[0]


def revision(message: str, rev_id: str, url: str | None = None, autogenerate: bool = False) -> Path:
    """Write a new revision file (``rev_id`` like ``"0002_experiments"``) and return its path.

    With ``autogenerate``, the body is diffed from the models against the database at ``url``.
    """
    script = command.revision(
        alembic_config(url), message=message, rev_id=rev_id, autogenerate=autogenerate
    )
    scripts = script if isinstance(script, list) else [script]
    if not scripts or scripts[0] is None:
        raise RuntimeError("alembic wrote no revision")
    return Path(scripts[0].path)
