"""Helpers shared by tests: throw-away databases on a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from banditroute.service.config import libpq_url, sqlalchemy_url

if TYPE_CHECKING:
    from banditroute.service.core.assignment import PolicyKey
    from banditroute.service.experiments.resolver import ExperimentCache
    from tests.tls_certs import Pki

__all__ = [
    "TEST_ADMIN_TOKEN",
    "InProcessServer",
    "SpawnedServer",
    "create_database",
    "database_name",
    "decision_row",
    "drop_database",
    "experiment_cache",
    "feedback_row",
    "free_port",
    "migrated_database",
    "mtls_server",
    "outcome_row",
    "put_models",
    "register_demo",
    "rpc_code",
    "run_environment",
    "spawn_server",
    "temporary_database",
    "url_for_database",
    "wait_for_health",
]


def url_for_database(url: str, name: str) -> str:
    """Return ``url`` (SQLAlchemy form) pointing at database ``name`` on the same server."""
    return make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)


def database_name(url: str) -> str:
    """Return the database name of ``url``."""
    name = make_url(sqlalchemy_url(url)).database
    if not name:
        raise ValueError(f"URL {url!r} names no database")
    return name


def create_database(server_url: str, prefix: str = "br_test", template: str | None = None) -> str:
    """Create a database with a unique random name (optionally copied from ``template``)
    on ``server_url``'s server and return its SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(statement)
    return url_for_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` on ``server_url``'s server, closing its connections first."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """:func:`create_database`, dropped again when the block ends; yields its URL."""
    url = create_database(server_url, prefix=prefix, template=template)
    try:
        yield url
    finally:
        drop_database(server_url, database_name(url))


@contextlib.contextmanager
def migrated_database(
    server_url: str | None, prefix: str, data_prefix: str = "banditroute-bench-"
) -> Iterator[tuple[str, str]]:
    """A :func:`temporary_database` migrated to head; yields ``(url, mode)``.

    On ``server_url``'s server (``mode`` "external"), or, when it is None, on an embedded
    PostgreSQL started for the block in a new ``/tmp/<data_prefix>*`` folder ("embedded"),
    stopped and removed afterwards. For benchmarks.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from banditroute.service.storage import migrate

    server = data_dir = None
    mode = "external"
    if server_url is None:
        from banditroute.service.storage.embedded import EmbeddedPostgres

        data_dir = Path(tempfile.mkdtemp(prefix=data_prefix, dir="/tmp"))
        server = EmbeddedPostgres(data_dir, database="postgres")
        server_url, mode = server.start(), "embedded"
    try:
        with temporary_database(server_url, prefix) as url:
            migrate.upgrade(url)
            yield url, mode
    finally:
        if server is not None:
            server.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


def run_environment(url: str, mode: str) -> dict[str, Any]:
    """Where a benchmark ran: ``database`` (``mode``), the PostgreSQL major version of ``url``'s
    server and the Python version."""
    import platform

    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')").fetchone()
    assert row is not None
    return {
        "database": mode,
        "postgres_version": int(row[0]) // 10000,
        "python": platform.python_version(),
    }


def write_benchmark_result(name: str, output: dict[str, Any], url: str, mode: str) -> None:
    """Add where the benchmark ran (:func:`run_environment`) to ``output``, write it to
    ``benchmarks/results/<name>.json`` and print it as one JSON line."""
    import json
    from pathlib import Path

    output = {**output, **run_environment(url, mode)}
    results_dir = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(output, indent=2) + "\n")
    print(json.dumps(output))


def decision_row(**overrides: Any) -> dict[str, Any]:
    """A complete decision row for
    :class:`~banditroute.service.storage.writer.GroupCommitWriter`."""
    from banditroute.service.storage.ids import decision_created_at, new_decision_id

    decision_id = overrides.pop("decision_id", None) or new_decision_id()
    features = np.arange(4, dtype="<f8") / 3.0
    row: dict[str, Any] = {
        "decision_id": decision_id,
        "created_at": decision_created_at(decision_id),
        "tenant": "",
        "route": "default",
        "request_id": "",
        "unit_id": "",
        "policy_name": "default",
        "policy_version": 1,
        "experiment": "",
        "variant": "",
        "bucket": None,
        "model": "m1",
        "propensity": 0.9,
        "candidates": ["m1", "m2"],
        "scores": [0.5, 0.25],
        "probabilities": [0.9, 0.1],
        "estimated_cost_usd": 0.001,
        "features": features.tobytes(),
        "numeric_context": {"n": 1.5},
        "categorical_context": {"lang": "en"},
        "prompt_hash": hashlib.sha256(b"hello").digest(),
        "prompt": None,
        "shadow": None,
        "logged": True,
        "pacing_cost_weight": 0.0,
        "pacing": "",
    }
    row.update(overrides)
    return row


def outcome_row(decision: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """An outcome row for ``decision`` (a :func:`decision_row`)."""
    fields = {
        "quality": 0.75,
        "success": True,
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.0005,
        "latency_ms": 420.0,
        "error": "",
        "reward": 0.7,
    }
    return _event_row(decision, fields, overrides)


def feedback_row(decision: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A feedback row for ``decision`` (a :func:`decision_row`)."""
    fields = {"feedback_key": "source:user", "rating": 1.0, "comment": None, "source": "user"}
    return _event_row(decision, fields, overrides)


def _event_row(
    decision: dict[str, Any], fields: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """A row naming ``decision`` (id, creation time, no tenant), then ``fields``, overridden."""
    row: dict[str, Any] = {
        "decision_id": decision["decision_id"],
        "decision_created_at": decision["created_at"],
        "tenant": None,
        **fields,
    }
    row.update(overrides)
    return row


# -- servers in subprocesses (added by the service engineer) --------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SpawnedServer:
    """A ``banditroute`` server running in a subprocess (see :func:`spawn_server`)."""

    def __init__(self, proc: Any, address: str, log_path: str) -> None:
        self.proc = proc
        self.address = address
        self.log_path = log_path

    @property
    def pid(self) -> int:
        """Process id of the server (the supervising parent with ``workers > 1``)."""
        return int(self.proc.pid)

    def log(self) -> str:
        """What the server wrote to stderr/stdout so far."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        """SIGKILL the server (and, with workers, its process group)."""
        import os
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except Exception:
                self.kill()
        return int(self.proc.returncode or 0)

    def __enter__(self) -> SpawnedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_for_health(address: str, timeout: float = 60.0, proc: Any = None) -> None:
    """Block until the gRPC health service at ``address`` answers SERVING."""
    import time

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before becoming healthy")
        try:
            with grpc.insecure_channel(address) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"server at {address} not healthy after {timeout}s: {last}")


def spawn_server(
    db_url: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    timeout: float = 90.0,
) -> SpawnedServer:
    """Run ``banditroute serve`` on ``db_url`` in a subprocess on a free port.

    Settings come from ``BANDITROUTE_*`` environment variables (``env`` overrides them);
    metrics are off unless ``env`` sets ``BANDITROUTE_METRICS_PORT``. Waits for health.
    """
    import os
    import subprocess
    import sys
    import tempfile

    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BANDITROUTE_")}
    full_env.update(
        {
            "BANDITROUTE_DATABASE_URL": db_url,
            "BANDITROUTE_PORT": str(port),
            "BANDITROUTE_HOST": "127.0.0.1",
            "BANDITROUTE_WORKERS": str(workers),
            "BANDITROUTE_METRICS_PORT": "0",
            "BANDITROUTE_POLL_INTERVAL_MS": "100",
        }
    )
    full_env.update(env or {})
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open by the child
        prefix="banditroute-server-", suffix=".log", delete=False, dir="/tmp"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "banditroute.service.cli", "serve", *args],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = SpawnedServer(proc, f"127.0.0.1:{port}", log.name)
    try:
        wait_for_health(server.address, timeout, proc)
    except Exception:
        server.kill()
        raise RuntimeError(f"server did not start:\n{server.log()[-4000:]}") from None
    return server


# -- a server in this process (added by the service engineer) -------------------------------

TEST_ADMIN_TOKEN = "test-admin-token"


class InProcessServer:
    """A real banditroute server in this process on ``127.0.0.1:0``, on its own event loop.

    The loop runs in a daemon thread, so tests use the synchronous grpc client;
    :meth:`call` runs a coroutine on the server's loop (e.g. to inspect the follower).
    """

    def __init__(self, db_url: str, admin_token: str = TEST_ADMIN_TOKEN, **settings: Any) -> None:
        import asyncio
        import threading

        from banditroute.service.config import Settings
        from banditroute.service.server import create_server

        self.db_url = db_url
        self.admin_token = admin_token
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        values: dict[str, Any] = {
            "database_url": db_url,
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "admin_token": admin_token,
            "poll_interval_ms": 50,
            "shutdown_grace_s": 1.0,
        }
        values.update(settings)
        try:
            self.app, self.port = self.call(create_server(Settings(**values)))
            self.call(self.app.start())
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        self.address = f"127.0.0.1:{self.port}"
        self.admin_metadata = (("authorization", f"Bearer {admin_token}"),)

    def call(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run ``coro`` on the server's loop and return its result."""
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self) -> int:
        """Let the server's writer commit the decisions Route answered before their commit,
        and its follower apply every committed event; returns the follower's position."""
        self.call(self.app.writer.settle(None, 30.0))
        self.call(self.app.follower.catch_up())
        return int(self.app.follower.position)

    def stop(self) -> None:
        """Graceful shutdown, then stop the loop."""
        try:
            self.call(self.app.stop(grace=1.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def register_demo(db_url: str) -> None:
    """Register the demo model pool and route ``default`` (as ``serve --demo`` does)."""
    from banditroute.service.core.demo import register_demo_pool
    from banditroute.service.storage.database import create_engine

    engine = create_engine(db_url, pool_size=1)
    try:
        register_demo_pool(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def demo_router_with_metrics(db_url: str) -> Iterator[tuple[Any, Callable[[], str]]]:
    """Register the demo pool and serve it in process with a metrics port.

    Yields a ``RouterStub`` on an open channel and ``scrape()``, which syncs the server and
    returns its ``/metrics`` text; the server stops on exit."""
    import urllib.request

    from banditroute.v1 import router_pb2_grpc

    register_demo(db_url)
    port = free_port()
    server = InProcessServer(db_url, metrics_port=port)

    def scrape() -> str:
        server.sync()
        url = f"http://127.0.0.1:{port}/metrics"
        return urllib.request.urlopen(url, timeout=10).read().decode()  # type: ignore[no-any-return]

    try:
        with grpc.insecure_channel(server.address) as channel:
            yield router_pb2_grpc.RouterStub(channel), scrape
    finally:
        server.stop()


def rpc_code(call: Callable[[], Any]) -> grpc.StatusCode:
    """The status code ``call()`` (one gRPC call) ends with: ``OK`` when it raises nothing."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def mtls_server(db_url: str, pki: Pki) -> InProcessServer:
    """An :class:`InProcessServer` serving ``pki``'s server pair, requiring its clients' certs."""
    return InProcessServer(
        db_url,
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        tls_client_ca_file=pki.ca.cert,
    )


def put_models(
    admin: Any,
    ids: Iterable[str],
    metadata: Any,
    *,
    provider: str = "test",
    input_usd_per_mtok: float = 1.0,
    output_usd_per_mtok: float = 1.0,
) -> None:
    """Register enabled models ``ids`` with one price through the Admin stub ``admin``."""
    from banditroute.v1 import admin_pb2

    for model_id in ids:
        model = admin_pb2.Model(
            id=model_id,
            provider=provider,
            input_usd_per_mtok=input_usd_per_mtok,
            output_usd_per_mtok=output_usd_per_mtok,
            enabled=True,
        )
        admin.PutModel(admin_pb2.PutModelRequest(model=model), metadata=metadata)


def experiment_cache(
    route: str,
    variants: dict[str, tuple[float, PolicyKey]],
    shadows: tuple[PolicyKey, ...] = (),
) -> ExperimentCache:
    """An ``ExperimentCache`` holding one running experiment, ``"e"`` (salt ``"e"``), on the
    shared tenant's ``route``: ``variants`` maps each variant to its weight (percent) and the
    policy version it serves; ``shadows`` are scored next to every variant."""
    from banditroute.service.experiments.assignment import initial_allocation
    from banditroute.service.experiments.resolver import CompiledExperiment, ExperimentCache

    experiment = CompiledExperiment.build(
        name="e",
        tenant="",
        route=route,
        salt="e",
        allocation=initial_allocation({v: weight for v, (weight, _) in variants.items()}),
        policies={v: policy for v, (_, policy) in variants.items()},
        shadows=shadows,
    )
    cache = ExperimentCache()
    cache.load([experiment])
    return cache
