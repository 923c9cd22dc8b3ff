"""Shared fixtures: real PostgreSQL databases (embedded by default, or an external server).

- Embedded mode (default): one embedded PostgreSQL for the session, in
  ``$BANDITROUTE_TEST_DATA_DIR`` or a new temporary directory under /tmp.
- External mode: ``BANDITROUTE_TEST_DATABASE_URL`` (e.g.
  ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); databases with random names are
  created on that server and dropped at the end.

One migrated template database is built per session; ``db_url`` and ``fresh_db_url`` are
copies of it (``CREATE DATABASE ... TEMPLATE``), so a fresh database costs milliseconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from banditroute.service.storage import migrate
from tests.helpers import database_name, temporary_database, url_for_database

TEST_DATABASE_URL_ENV = "BANDITROUTE_TEST_DATABASE_URL"
TEST_DATA_DIR_ENV = "BANDITROUTE_TEST_DATA_DIR"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """SQLAlchemy URL of a maintenance database (``postgres``) on the test server."""
    external = os.environ.get(TEST_DATABASE_URL_ENV)
    if external:
        yield url_for_database(external, database_name(external))
        return
    from banditroute.service.storage.embedded import EmbeddedPostgres

    given = os.environ.get(TEST_DATA_DIR_ENV)
    data_dir = Path(given or tempfile.mkdtemp(prefix="banditroute-test-", dir="/tmp"))
    server = EmbeddedPostgres(data_dir, database="postgres")
    try:
        yield server.start()
    finally:
        server.stop()
        if not given:
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """Name of a database migrated to head, used as the template of test databases."""
    with temporary_database(pg_server_url, "br_template") as url:
        migrate.upgrade(url)
        yield database_name(url)


@pytest.fixture(scope="session")
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """URL of a fresh, migrated database shared by the whole test session."""
    with temporary_database(pg_server_url, "br_session", template=template_db) as url:
        yield url


@pytest.fixture
def fresh_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """URL of a new, empty, migrated database for one test."""
    with temporary_database(pg_server_url, "br_test", template=template_db) as url:
        yield url


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """URL of a new database with no schema at all (for migration tests)."""
    with temporary_database(pg_server_url, "br_empty") as url:
        yield url


@pytest.fixture
def grpc_server(fresh_db_url: str) -> Iterator[Any]:
    """A real server in this process on 127.0.0.1:0 over ``fresh_db_url``, demo pool registered.

    Has ``.address``, ``.admin_token``, ``.db_url``, ``.app`` (the server's parts) and
    ``.sync()`` (let its follower apply every committed event).
    """
    from tests.helpers import InProcessServer, register_demo

    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url)
    try:
        yield server
    finally:
        server.stop()
