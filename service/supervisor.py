"""Running the service: ``banditroute serve`` until SIGTERM/SIGINT, with ``--workers N``.

:func:`serve` opens the database (:func:`~banditroute.service.storage.database.open_database`:
the embedded PostgreSQL is started and migrated, an external one checked), registers the demo
pool when asked, then runs :func:`run_workers`. With one worker the server runs in this process;
with ``workers > 1`` this process starts N worker processes on one port (``SO_REUSEPORT``: the
kernel spreads connections) and supervises them, restarting a worker that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
import time
from typing import Any

from banditroute.service.config import Settings
from banditroute.service.core.demo import register_demo_pool
from banditroute.service.logs import configure_logging
from banditroute.service.server import create_server
from banditroute.service.storage.database import SchemaMode, create_engine, open_database

__all__ = ["run_workers", "serve"]

log = logging.getLogger(__name__)


def serve(settings: Settings, *, migrate: bool = False) -> None:
    """Run the service until SIGTERM/SIGINT (see the module docstring).

    Parameters
    ----------
    settings
        Configuration.
    migrate
        Migrate an external database first (the embedded one is always migrated).

    Raises
    ------
    FailedPrecondition
        An external database is not at this banditroute's schema and ``migrate`` is False.
    Unavailable
        The database cannot be reached or started.
    """
    configure_logging(settings)
    schema: SchemaMode = "migrate" if migrate else "check"
    with open_database(settings, schema=schema, partitions=True) as database:
        if settings.demo:
            engine = create_engine(database.url, pool_size=1)
            try:
                if register_demo_pool(engine):
                    log.info("registered the demo model pool and route 'default'")
            finally:
                engine.dispose()
        run_workers(settings, database.url)


def run_workers(settings: Settings, database_url: str) -> None:
    """Serve ``database_url`` with ``settings.workers`` processes until signalled."""
    if settings.workers <= 1:
        _install_event_loop()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_one(settings, database_url, 0, reuse=False))
        return
    port = settings.port or _free_port(settings.host)
    worker_settings = settings.model_copy(update={"port": port, "workers": 1})
    _supervise(worker_settings, database_url, settings.workers)


def _install_event_loop() -> None:
    with contextlib.suppress(ImportError):  # uvloop is not available on Windows
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _serve_one(settings: Settings, database_url: str, worker_index: int, reuse: bool) -> None:
    app, port = await create_server(
        settings, database_url=database_url, worker_index=worker_index, reuse_port=reuse
    )
    await app.start()
    _tune_gc()
    log.info("banditroute worker %d serving on %s:%d", worker_index, settings.host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("banditroute worker %d shutting down", worker_index)
    await app.stop()


def _tune_gc() -> None:
    """Keep the start-up heap out of the garbage collector's way.

    Everything allocated during start-up (modules, protobuf descriptors, policies, the
    configuration) lives as long as the process; :func:`gc.freeze` moves it to the permanent
    generation, so the collections that do happen no longer walk it. (A Route frees what it
    allocates by reference counting: 4,000 Routes in process trigger about one young
    collection.)
    """
    gc.collect()
    gc.freeze()


def _worker_main(settings: Settings, database_url: str, worker_index: int, reuse: bool) -> None:
    configure_logging(settings)
    _install_event_loop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_one(settings, database_url, worker_index, reuse))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host if host not in ("", "[::]", "::") else "0.0.0.0", 0))
        return int(s.getsockname()[1])


def _supervise(settings: Settings, url: str, workers: int) -> None:
    """Start ``workers`` processes on one port and restart any that dies, until signalled."""
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, Any] = {}
    stopping = False

    def start(i: int) -> None:
        p = ctx.Process(
            target=_worker_main, args=(settings, url, i, True), name=f"banditroute-worker-{i}"
        )
        p.start()
        procs[i] = p

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for i in range(workers):
            start(i)
        log.info("banditroute serving with %d workers on port %d", workers, settings.port)
        restarts: list[float] = []
        while not stopping:
            time.sleep(0.2)
            for i, p in list(procs.items()):
                if not p.is_alive() and not stopping:
                    log.warning("worker %d exited with %s; restarting", i, p.exitcode)
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < 60] + [now]
                    if len(restarts) > 10 * workers:
                        log.error("workers keep dying; giving up")
                        stopping = True
                        break
                    start(i)
    finally:
        for p in procs.values():
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.shutdown_grace_s + 15
        for p in procs.values():
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
        for s, handler in old.items():
            signal.signal(s, handler)
