"""Prometheus metrics of one banditroute process.

Each server process owns a private :class:`Metrics` registry served over HTTP on its own port:
worker ``i`` of ``serve --workers N`` listens on ``metrics_port + i`` (worker 0 on
``metrics_port`` itself), so every process is scraped as its own target and no shared
multiprocess directory is needed; sum over the ``instance`` label in queries. ``metrics_port``
0 disables the HTTP endpoint (the counters still exist, e.g. for tests).

The same HTTP server serves the read-only dashboard (``banditroute.service.dashboard``) at every
other path once a WSGI application is mounted with :meth:`Metrics.mount`; before that, and
without one, every path answers the metrics as ``prometheus_client`` does.

Exported series (prefix ``banditroute_``):

========================================  =====================================================
``decisions_total{model}``                Route decisions answered (replays excluded)
``route_replays_total``                   Route calls answered from a stored request_id
``outcomes_total{result}``                outcomes by result: accepted, duplicate, rejected
``feedback_total{result}``                feedback by result: accepted, duplicate, rejected
``reward``                                histogram of rewards of accepted outcomes/feedback
``rpc_duration_seconds{method,code}``     histogram of RPC latency by method and status code
``write_batch_rows``                      histogram of rows per group commit
``db_errors_total{op}``                   database errors by operation
``follower_lag_events``                   events in the log not yet applied by this process
``follower_applied_events_total``         events applied to the policies by this process
``follower_last_event_id``                id of the last event applied
``in_flight_requests``                    RPCs being served (``banditroute.service.api.limits``)

========================================  =====================================================

Examples
--------
>>> m = Metrics()
>>> m.observe_rpc("Route", "OK", 0.002)
>>> m.decision("gpt-4o-mini")
>>> m.value("banditroute_decisions_total", model="gpt-4o-mini")
1.0
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
)
from prometheus_client.exposition import (  # what start_http_server uses
    ThreadingWSGIServer,
    _get_best_family,
    _SilentHandler,
)

__all__ = ["Metrics", "WsgiApp", "metrics_port_for_worker"]

#: A WSGI application (``app(environ, start_response) -> iterable of bytes``).
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
_REWARD_BUCKETS = (-1.0, -0.5, -0.25, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def metrics_port_for_worker(base_port: int, worker_index: int) -> int:
    """Metrics port of worker ``worker_index``: ``base_port + worker_index`` (0 = disabled).

    >>> metrics_port_for_worker(9464, 1), metrics_port_for_worker(0, 3)
    (9465, 0)
    """
    return 0 if base_port == 0 else base_port + worker_index


class Metrics:
    """The metrics of one process, in a private registry (so tests can build many)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "banditroute_"
        self.decisions = Counter(p + "decisions", "Route decisions", ["model"], registry=r)
        self.replays = Counter(p + "route_replays", "Route calls replayed", registry=r)
        self.outcomes = Counter(p + "outcomes", "Outcomes by result", ["result"], registry=r)
        self.feedback = Counter(p + "feedback", "Feedback by result", ["result"], registry=r)
        self.reward = Histogram(p + "reward", "Rewards", buckets=_REWARD_BUCKETS, registry=r)
        self.rpc_duration = Histogram(
            p + "rpc_duration_seconds",
            "RPC latency",
            ["method", "code"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.write_batch_rows = Histogram(
            p + "write_batch_rows", "Rows per group commit", buckets=_BATCH_BUCKETS, registry=r
        )
        self.db_errors = Counter(p + "db_errors", "Database errors", ["op"], registry=r)
        self.follower_lag = Gauge(p + "follower_lag_events", "Events not yet applied", registry=r)
        self.follower_applied = Counter(p + "follower_applied_events", "Events applied", registry=r)
        self.follower_last = Gauge(p + "follower_last_event_id", "Last applied id", registry=r)
        self._rpc_children: dict[tuple[str, str], Histogram] = {}
        self._decision_children: dict[str, Counter] = {}
        self._mounted: WsgiApp | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record one finished RPC."""
        key = (method, code)
        child = self._rpc_children.get(key)
        if child is None:
            child = self._rpc_children[key] = self.rpc_duration.labels(method, code)
        child.observe(seconds)

    def decision(self, model: str) -> None:
        """Count one decision for ``model``."""
        child = self._decision_children.get(model)
        if child is None:
            child = self._decision_children[model] = self.decisions.labels(model)
        child.inc()

    def db_error(self, op: str) -> None:
        """Count one database error during ``op``."""
        self.db_errors.labels(op).inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve this registry over HTTP on ``port`` (0 = do nothing); returns the port.

        The server is ``prometheus_client.start_http_server``'s (threaded, IPv4 or IPv6 as
        ``addr`` says, no access log) with the dashboard dispatch of :meth:`mount` in front."""
        if not port:
            return port
        combined = CollectorRegistry(auto_describe=False)
        combined.register(self.registry)  # type: ignore[arg-type]
        combined.register(REGISTRY)  # type: ignore[arg-type]  # limits' in-flight series
        metrics_app = make_wsgi_app(combined)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            mounted = self._mounted
            if mounted is None or environ.get("PATH_INFO", "") == "/metrics":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            return mounted(environ, start_response)

        class Server(ThreadingWSGIServer):
            pass

        Server.address_family, addr = _get_best_family(addr, port)
        httpd = make_server(addr, port, app, Server, handler_class=_SilentHandler)
        threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True).start()
        return port

    def mount(self, app: WsgiApp | None) -> None:
        """Answer every path but ``/metrics`` with ``app`` (the dashboard); None unmounts."""
        self._mounted = app

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (for tests and the load benchmark); 0.0 when absent."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else float(got)
