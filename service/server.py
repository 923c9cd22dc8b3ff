"""The banditroute gRPC server: wiring, start-up, graceful shutdown and ``--workers N``.

:func:`create_server` builds one process's server on a database URL and binds its port
(``port=0`` picks a free one), returning ``(server, port)`` so tests can run it in-process on
``127.0.0.1:0``. :func:`serve` runs it until SIGTERM/SIGINT: with the embedded database it
starts (and migrates) the private PostgreSQL first; with ``workers > 1`` a parent process starts
N worker processes on the same port (``SO_REUSEPORT``: the kernel spreads connections) and
supervises them, restarting a worker that dies.

Each process serves every route and learns from every outcome and feedback, whichever process
or replica received it, by following the event log in PostgreSQL
(:mod:`banditroute.service.core.follower`). Replicas on several machines work the same way: point
them at one PostgreSQL.

Shutdown: health goes NOT_SERVING (load balancers stop sending), the server stops accepting
and gives in-flight calls ``shutdown_grace_s`` to finish, the writer flushes every queued row,
then the follower and the database pool stop.
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
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine

from banditroute.learners.features import FeatureExtractor
from banditroute.service.api.interceptors import Authenticator, ServiceInterceptor
from banditroute.service.api.limits import LimitsInterceptor, server_options
from banditroute.service.api.registration import add_intercepted
from banditroute.service.api.router import RouterServicer
from banditroute.service.config import Settings
from banditroute.service.core.assignment import ExperimentResolver
from banditroute.service.core.follower import EventFollower
from banditroute.service.core.outcomes import OutcomeCore
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.core.router import RouterCore
from banditroute.service.core.store import SqlStore
from banditroute.service.metrics import Metrics, metrics_port_for_worker
from banditroute.service.security import add_port, install_log_redaction, warn_if_exposed
from banditroute.service.storage.writer import GroupCommitWriter
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc

__all__ = ["BanditrouteServer", "create_server", "register_demo_pool", "serve"]

from banditroute.service.experiments.guardrails import guardrail_loop
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.resolver import ExperimentCache

log = logging.getLogger(__name__)

GUARDRAIL_INTERVAL_S = 10.0

SERVICE_NAMES = (
    router_pb2.DESCRIPTOR.services_by_name["Router"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
)


@dataclass
class BanditrouteServer:
    """One running server process: the grpc server and the parts tests may inspect."""

    grpc_server: grpc.aio.Server
    port: int
    settings: Settings
    database_url: str
    engine: Engine
    writer: GroupCommitWriter
    follower: EventFollower
    registry: PolicyRegistry
    router: RouterCore
    outcomes: OutcomeCore
    metrics: Metrics
    health: HealthServicer
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    _stopped: bool = False

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        host = self.settings.host
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Start serving (health SERVING once the port accepts calls)."""
        await self.grpc_server.start()
        for name in (*SERVICE_NAMES, ""):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        # Guardrails stop a losing experiment variant even when nobody asks for its status.
        manager = ExperimentManager(self.engine)
        self.background.append(asyncio.create_task(guardrail_loop(manager, GUARDRAIL_INTERVAL_S)))

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown (see the module docstring); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_s if grace is None else grace
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        await self.grpc_server.stop(grace)
        close = getattr(self.router.store, "close", None)  # the outage buffer: write what it holds
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        await self.writer.close()
        for task in self.background:
            task.cancel()
        for task in self.background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.follower.stop()
        self.engine.dispose()

    async def wait_for_termination(self) -> None:
        """Block until the grpc server stops."""
        await self.grpc_server.wait_for_termination()


def _experiment_resolver(engine: Engine, follower: EventFollower) -> ExperimentResolver:
    """The experiments' resolver, reloaded with the config."""
    cache = ExperimentCache()
    follower.config_hooks.append(cache.reload)
    return cache


async def create_server(
    settings: Settings,
    *,
    database_url: str | None = None,
    resolver: ExperimentResolver | None = None,
    worker_index: int = 0,
    reuse_port: bool = False,
    metrics: Metrics | None = None,
    seed: int | None = None,
) -> tuple[BanditrouteServer, int]:
    """Build and bind one server process (not started: call ``await server.start()``).

    Parameters
    ----------
    settings
        Configuration; ``host``/``port`` are bound (port 0 = a free port).
    database_url
        Database to use instead of ``settings.database_url`` (e.g. the embedded one).
    resolver
        Experiment resolver; default: running experiments of ``banditroute.service.experiments``.
    worker_index
        Index of this worker (metrics port offset).
    reuse_port
        Bind with ``SO_REUSEPORT`` (several processes on one port).
    seed
        Seed of this process's exploration generator (default: from the OS).

    Returns
    -------
    tuple
        ``(server, port)``.

    Raises
    ------
    FailedPrecondition
        The schema is not migrated to this version (message says how to fix it).
    Unavailable
        The database cannot be reached.
    """
    from banditroute.service.storage.database import check_schema, create_engine

    url = database_url or settings.database_url
    if url is None:
        from banditroute.service.errors import FailedPrecondition

        raise FailedPrecondition("no database_url: start the embedded database with serve()")
    engine = create_engine(url, pool_size=4, connect_timeout_s=settings.db_connect_timeout_s)
    await asyncio.to_thread(check_schema, engine)
    from banditroute.service.config import libpq_url

    pq_url = libpq_url(url)
    metrics = metrics or Metrics()
    # The writer shares the serving loop: measured faster than a writer thread, whose round
    # trips wait for the GIL while the loop is busy (benchmarks/load.py).
    writer = GroupCommitWriter(
        url,
        flush_ms=settings.write_flush_ms,
        batch_max_rows=settings.write_batch_max_rows,
        max_pending_rows=settings.write_max_pending_rows,
        connect_timeout_s=settings.db_connect_timeout_s,
        on_batch=metrics.write_batch_rows.observe,
        on_db_error=metrics.db_error,
    )
    await writer.start()
    store = SqlStore(engine, writer, metrics=metrics)
    registry = PolicyRegistry(settings.feature_dim)
    follower = EventFollower(
        engine,
        registry,
        listen_url=pq_url,
        poll_interval_s=settings.poll_interval_ms / 1000.0,
        listening_poll_interval_s=settings.listening_poll_interval_ms / 1000.0,
        snapshot_every=settings.snapshot_every_events,
        metrics=metrics,
    )
    if resolver is None:
        resolver = _experiment_resolver(engine, follower)
    await follower.start()
    decisions: Any = store
    try:
        from banditroute.service.core.decision_buffer import BufferedDecisionStore

        decisions = BufferedDecisionStore(
            store, capacity=settings.outage_buffer_decisions, registry=metrics.registry
        )
    except ImportError:  # pragma: no cover
        pass
    router = RouterCore(
        registry,
        lambda: follower.config,
        decisions,
        extractor=FeatureExtractor(dim=settings.feature_dim),
        cost_model=follower.cost_model,
        resolver=resolver,
        max_prompt_bytes=settings.max_prompt_bytes,
        store_prompts=settings.store_prompts,
        rng=np.random.default_rng(seed),
        metrics=metrics,
    )
    outcomes = OutcomeCore(
        store,
        lambda: follower.config,
        on_written=follower.wake,
        max_batch_items=settings.max_batch_items,
        metrics=metrics,
        pending=decisions.holds if hasattr(decisions, "holds") else None,
    )
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    install_log_redaction([admin_token])
    warn_if_exposed(
        host=settings.host,
        tls=settings.tls_enabled,
        admin_token=admin_token is not None,
        require_api_keys=settings.require_api_keys,
    )
    auth = Authenticator(
        admin_token=admin_token,
        require_api_keys=settings.require_api_keys,
        api_keys=_KeysFromConfig(follower),
    )
    options: list[tuple[str, Any]] = [
        *server_options(settings.max_prompt_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    # Applied once per method at registration (banditroute.service.api.registration), not per call.
    interceptors = [
        LimitsInterceptor(settings.max_in_flight, registry=metrics.registry),
        ServiceInterceptor(auth, observer=metrics),
    ]
    server = grpc.aio.server(options=options)
    await add_intercepted(
        server,
        router_pb2_grpc.add_RouterServicer_to_server,
        RouterServicer(router, outcomes),
        interceptors,
    )
    admin_servicer = _admin_servicer(settings, engine, follower, registry)
    if admin_servicer is not None:
        await add_intercepted(
            server, admin_pb2_grpc.add_AdminServicer_to_server, admin_servicer, interceptors
        )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = add_port(server, f"{settings.host}:{settings.port}", settings)
    metrics.serve(metrics_port_for_worker(settings.metrics_port, worker_index), settings.host)
    app = BanditrouteServer(
        grpc_server=server,
        port=port,
        settings=settings,
        database_url=url,
        engine=engine,
        writer=writer,
        follower=follower,
        registry=registry,
        router=router,
        outcomes=outcomes,
        metrics=metrics,
        health=health,
    )
    return app, port


class _KeysFromConfig:
    """API-key lookup on the follower's current config snapshot."""

    def __init__(self, follower: EventFollower) -> None:
        self.follower = follower

    def tenant_for_key(self, raw_key: str) -> str | None:
        return self.follower.config.tenant_for_key(raw_key)


def _admin_servicer(
    settings: Settings, engine: Engine, follower: EventFollower, registry: PolicyRegistry
) -> Any:
    try:
        from banditroute.service.api.admin import AdminServicer
    except ImportError as exc:  # pragma: no cover - admin core not available yet
        log.warning("Admin API disabled: %s", exc)
        return None
    return AdminServicer(engine=engine, follower=follower, registry=registry)


# ---------------------------------------------------------------------- running
def _install_event_loop() -> None:
    with contextlib.suppress(ImportError):
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
    _configure_logging(settings)
    _install_event_loop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_one(settings, database_url, worker_index, reuse))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, request_id (inside an RPC), msg.

    Messages never carry prompt text or secrets (see :mod:`banditroute.service.security`, whose
    redaction runs on every record before any formatter).
    """

    def format(self, record: logging.LogRecord) -> str:
        import json

        from banditroute.service.api.interceptors import request_id_var

        out: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(settings.log_level)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host if host not in ("", "[::]", "::") else "0.0.0.0", 0))
        return int(s.getsockname()[1])


def _prepare_database(settings: Settings) -> tuple[str, Any]:
    """The database URL to serve on; starts and migrates the embedded one when configured."""
    if settings.database_url is not None:
        return settings.database_url, None
    from banditroute.service.storage import migrate
    from banditroute.service.storage.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.data_dir)
    url = pg.start()
    migrate.upgrade(url)
    return url, pg


def register_demo_pool(database_url: str) -> bool:
    """Register the demo model pool, policy ``default`` (LinUCB) and route ``default`` where
    missing (:func:`banditroute.service.core.admin.register_demo_pool`); True when something was
    added."""
    from banditroute.service.core.admin import register_demo_pool as register
    from banditroute.service.storage.database import create_engine

    engine = create_engine(database_url)
    try:
        return register(engine)
    finally:
        engine.dispose()


def _register_demo(settings: Settings, url: str) -> None:
    if settings.demo and register_demo_pool(url):
        log.info("registered the demo model pool and route 'default'")


def serve(settings: Settings) -> None:
    """Run the service until SIGTERM/SIGINT (see the module docstring)."""
    _configure_logging(settings)
    url, pg = _prepare_database(settings)
    try:
        _register_demo(settings, url)
        if settings.workers <= 1:
            _install_event_loop()
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve_one(settings, url, 0, reuse=False))
            return
        port = settings.port or _free_port(settings.host)
        worker_settings = settings.model_copy(update={"port": port, "workers": 1})
        _supervise(worker_settings, url, settings.workers)
    finally:
        if pg is not None:
            pg.stop()


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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m banditroute.service.server [--port N] [--workers N] [--demo] ...``: serve.

    Settings come from the environment and ``--config`` (see :mod:`banditroute.service.config`); the
    options here override them. The ``banditroute serve`` command is the documented entry point;
    this one needs nothing but the standard library to parse its arguments.
    """
    import argparse

    from banditroute.service.config import load_settings

    parser = argparse.ArgumentParser(prog="python -m banditroute.service.server")
    parser.add_argument("--config", default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--demo", action="store_true", default=None)
    ns = parser.parse_args(argv)
    settings = load_settings(
        ns.config,
        host=ns.host,
        port=ns.port,
        metrics_port=ns.metrics_port,
        workers=ns.workers,
        data_dir=ns.data_dir,
        database_url=ns.database_url,
        demo=ns.demo,
    )
    serve(settings)


if __name__ == "__main__":
    main()
