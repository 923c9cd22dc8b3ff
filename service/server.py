"""The composition root of one server process: :func:`create_server` wires every part.

:func:`create_server` builds one process's server on a database URL and binds its port
(``port=0`` picks a free one), returning ``(server, port)`` so tests can run it in-process on
``127.0.0.1:0``. Running it until a signal, with several worker processes, is
:mod:`banditroute.service.supervisor`; log formatting is :mod:`banditroute.service.logs`.

Each process serves every route and learns from every outcome and feedback, whichever process
or replica received it, by following the event log in PostgreSQL
(:mod:`banditroute.service.core.follower`). Replicas on several machines work the same way: point
them at one PostgreSQL.

Shutdown (:meth:`BanditrouteServer.stop`): health goes NOT_SERVING (load balancers stop
sending), the server stops accepting and gives in-flight calls ``shutdown_grace_s`` to finish,
the outage buffer and the writer flush every queued row, then the follower and the database
pool stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from banditroute.service.api.admin import AdminServicer
from banditroute.service.api.interceptors import Authenticator, ServiceInterceptor
from banditroute.service.api.limits import (
    LimitsInterceptor,
    request_limit_bytes,
    server_options,
)
from banditroute.service.api.registration import GenericOnly, add_intercepted
from banditroute.service.api.router import RouterServicer
from banditroute.service.config import Settings, libpq_url
from banditroute.service.core.assignment import ExperimentResolver
from banditroute.service.core.decision_buffer import BufferedDecisionStore
from banditroute.service.core.follower import EventFollower
from banditroute.service.core.outcomes import OutcomeCore
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.core.router import RouterCore
from banditroute.service.core.store import SqlStore
from banditroute.service.dashboard import Dashboard
from banditroute.service.errors import FailedPrecondition
from banditroute.service.experiments.guardrails import guardrail_loop
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.resolver import ExperimentCache
from banditroute.service.metrics import Metrics, metrics_port_for_worker
from banditroute.service.security import add_port, install_log_redaction, warn_if_exposed
from banditroute.service.storage.database import check_schema, create_engine
from banditroute.service.storage.writer import GroupCommitWriter, WriterLimits
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc

__all__ = ["BanditrouteServer", "create_server"]

log = logging.getLogger(__name__)

GUARDRAIL_INTERVAL_S = 10.0
#: Recent decisions of this process remembered for their outcomes (about 17 MB): an outcome for
#: one of them is joined without reading the decision back (core/outcomes.py).
RECENT_DECISIONS = 50_000

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
    url = database_url or settings.database_url
    if url is None:
        raise FailedPrecondition(
            "no database_url: open the database first (storage.database.open_database)"
        )
    engine = create_engine(url, pool_size=4, connect_timeout_s=settings.db_connect_timeout_s)
    await asyncio.to_thread(check_schema, engine)
    pq_url = libpq_url(url)
    metrics = metrics or Metrics()
    # The writer shares the serving loop: measured faster than a writer thread, whose round
    # trips wait for the GIL while the loop is busy (benchmarks/load.py).
    limits = WriterLimits(
        flush_ms=settings.write_flush_ms,
        batch_max_rows=settings.write_batch_max_rows,
        max_pending_rows=settings.write_max_pending_rows,
        connect_timeout_s=settings.db_connect_timeout_s,
    )
    writer = GroupCommitWriter(
        url, limits, on_batch=metrics.write_batch_rows.observe, on_db_error=metrics.db_error
    )
    await writer.start()
    # Off the request path, an outcome may name a decision some process has not committed yet:
    # its lookup waits for it while the decision is younger than a generous commit delay.
    decision_wait_s = 0.0 if settings.durable_decisions else max(1.0, settings.write_flush_ms / 4)
    store = SqlStore(engine, writer, metrics=metrics, decision_wait_s=decision_wait_s)
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
    decisions = BufferedDecisionStore(
        store,
        capacity=settings.outage_buffer_decisions,
        registry=metrics.registry,
        durable=settings.durable_decisions,
        max_unsettled=settings.write_batch_max_rows,
        recent_capacity=RECENT_DECISIONS,
    )
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
        budgets=follower.budgets,
    )
    outcomes = OutcomeCore(
        store,
        lambda: follower.config,
        on_written=follower.wake,
        max_batch_items=settings.max_batch_items,
        metrics=metrics,
        pending=decisions.holds,
        recent=decisions,
        budgets=follower.budgets,
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
        LimitsInterceptor(
            settings.max_in_flight,
            registry=metrics.registry,
            max_message_bytes=request_limit_bytes(settings.max_prompt_bytes),
        ),
        ServiceInterceptor(auth, observer=metrics),
    ]
    server = grpc.aio.server(options=options)
    await add_intercepted(
        server,
        router_pb2_grpc.add_RouterServicer_to_server,
        RouterServicer(router, outcomes),
        interceptors,
    )
    await add_intercepted(
        server,
        admin_pb2_grpc.add_AdminServicer_to_server,
        AdminServicer(engine=engine, follower=follower, registry=registry),
        interceptors,
        registered=False,  # rarely called: see banditroute.service.api.registration
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, GenericOnly(server))
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
    metrics.mount(
        Dashboard(engine, registry=registry, budgets=follower.budgets, admin_token=admin_token)
    )
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
