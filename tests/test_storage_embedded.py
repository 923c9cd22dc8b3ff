"""The embedded PostgreSQL: recovery from killed owners, shared use, location rules."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.service.errors import FailedPrecondition
from banditroute.service.storage.embedded import EmbeddedPostgres

REPO = Path(__file__).resolve().parent.parent
_HOLDER = """
import sys, time
from banditroute.service.storage.embedded import EmbeddedPostgres
EmbeddedPostgres(sys.argv[1]).start()
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="banditroute-embedded-", dir="/tmp"))
    yield path
    if _server_running(path):  # never leave a server behind
        with contextlib.suppress(psutil.Error, OSError):
            EmbeddedPostgres(path).stop()
            os.kill(_postmaster_pid(path) or 0, signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _server_running(data_dir: Path) -> bool:
    pid = _postmaster_pid(data_dir)
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _holder(data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _select_one(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


def test_start_stop_and_restart_keep_data(data_dir: Path) -> None:
    with (
        EmbeddedPostgres(data_dir) as pg,
        psycopg.connect(libpq_url(pg.url), autocommit=True) as conn,
    ):
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    assert not _server_running(data_dir)
    with EmbeddedPostgres(data_dir) as pg, psycopg.connect(libpq_url(pg.url)) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_start_after_owner_was_killed_adopts_and_stops_the_server(data_dir: Path) -> None:
    holder = _holder(data_dir)
    holder.kill()  # SIGKILL: no cleanup, the server keeps running
    holder.wait()
    assert _server_running(data_dir)
    pg = EmbeddedPostgres(data_dir)
    assert _select_one(pg.start()) == 1
    pg.stop()
    assert not _server_running(data_dir)


def test_start_after_owner_and_server_were_killed(data_dir: Path) -> None:
    holder = _holder(data_dir)
    server_pid = _postmaster_pid(data_dir)
    assert server_pid is not None
    holder.kill()
    os.kill(server_pid, signal.SIGKILL)
    holder.wait()
    pg = EmbeddedPostgres(data_dir)
    try:
        assert _select_one(pg.start()) == 1  # stale postmaster.pid and socket lock handled
    finally:
        pg.stop()
    assert not _server_running(data_dir)


def test_stop_leaves_server_running_for_another_live_process(data_dir: Path) -> None:
    holder = _holder(data_dir)
    try:
        pg = EmbeddedPostgres(data_dir)
        url = pg.start()
        pg.stop()
        assert _server_running(data_dir)
        assert _select_one(url) == 1
    finally:
        holder.kill()
        holder.wait()
    last = EmbeddedPostgres(data_dir)
    last.start()
    last.stop()
    assert not _server_running(data_dir)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_data_dir_under_root_home_is_refused_for_root() -> None:
    with pytest.raises(FailedPrecondition, match="/root"):
        EmbeddedPostgres("/root/banditroute-should-not-exist").start()
    assert not Path("/root/banditroute-should-not-exist").exists()
