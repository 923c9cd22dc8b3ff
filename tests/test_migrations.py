"""Migrations: up from empty, down again, model/migration parity, and the schema check."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from banditroute.service.errors import FailedPrecondition
from banditroute.service.storage import migrate
from banditroute.service.storage.database import check_schema, create_engine, schema_problem
from banditroute.service.storage.models import Base


def test_upgrade_from_empty_reaches_head_and_passes_check(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        assert migrate.current(empty_db_url) is None
        migrate.upgrade(empty_db_url)
        assert migrate.current(empty_db_url) == migrate.head()
        check_schema(engine)
        with engine.connect() as conn:
            tables = set(
                conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                ).scalars()
            )
        assert {"models", "policies", "routes", "api_keys", "decisions", "outcomes"} <= tables
        assert {"feedback", "policy_snapshots", "request_ids", "decisions_default"} <= tables
    finally:
        engine.dispose()


def _only_modelled_tables(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Compare the tables of ``Base.metadata``; tables other parts keep outside it are theirs."""
    if not migrate.include_object(obj, name, type_, reflected, compare_to):
        return False
    if type_ == "table":
        return name in Base.metadata.tables
    table = getattr(obj, "table", None)
    return table is None or table.name in Base.metadata.tables


def test_models_match_migrations(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": _only_modelled_tables,
                },
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    migrate.downgrade(empty_db_url, "base")
    assert migrate.current(empty_db_url) is None
    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head()


def _schema_refusal(url: str, statement: str | None = None) -> str:
    """The message check_schema refuses ``url``'s database with (after ``statement``)."""
    engine = create_engine(url)
    try:
        if statement is not None:
            with engine.begin() as conn:
                conn.execute(text(statement))
        with pytest.raises(FailedPrecondition) as caught:
            check_schema(engine)
    finally:
        engine.dispose()
    return str(caught.value)


def test_check_schema_on_empty_database_says_run_db_upgrade(empty_db_url: str) -> None:
    message = _schema_refusal(empty_db_url)
    assert "database schema is at none" in message
    assert f"needs {migrate.head()}" in message
    assert "banditroute db upgrade" in message


def test_check_schema_on_newer_schema_says_upgrade_banditroute(fresh_db_url: str) -> None:
    message = _schema_refusal(
        fresh_db_url, "UPDATE alembic_version SET version_num = '9999_from_the_future'"
    )
    assert "9999_from_the_future" in message
    assert "newer than this banditroute" in message


def test_check_schema_on_older_schema_says_run_db_upgrade(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
        # an unknown *older* id is indistinguishable from a newer one; a known older one:
        problem = schema_problem(engine)
        assert problem is not None and "0000_older" in problem
    finally:
        engine.dispose()


def test_revisions_form_one_numbered_chain_in_date_prefixed_files() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    chain = list(reversed(list(script.walk_revisions())))
    assert chain[0].revision == "0001_initial" and chain[0].down_revision is None
    for number, (older, newer) in enumerate(itertools.pairwise(chain), start=2):
        assert newer.down_revision == older.revision
        assert newer.revision.startswith(f"{number:04d}_")
    for rev in chain:
        name = Path(rev.path).name
        assert re.fullmatch(r"\d{4}_\d{2}_\d{2}_" + re.escape(rev.revision) + r"\.py", name), name
    assert chain[-1].revision == migrate.head()
