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
``decisions_total{route,policy,variant,model}``  Route decisions answered (replays excluded)
``route_replays_total``                   Route calls answered from a stored request_id
``outcomes_total{result}``                outcomes by result: accepted, duplicate, rejected
``feedback_total{result}``                feedback by result: accepted, duplicate, rejected
``reward{route,policy,variant}``          histogram of rewards of accepted outcomes/feedback
``spend_usd_total{route,model,variant}``  USD spent: the cost of each accepted outcome
``budget_remaining_usd{route}``           money left in the route's budget period (issue #12)
``pacing_lambda{route}``                  the route's budget controller lambda (dimensionless)
``pacing_cost_weight{route}``             its cost weight, USD^-1, as decisions use it
``rpc_duration_seconds{method,code}``     histogram of RPC latency by method and status code
``write_batch_rows``                      histogram of rows per group commit
``db_errors_total{op}``                   database errors by operation
``follower_lag_events``                   events in the log not yet applied by this process
``follower_applied_events_total``         events applied to the policies by this process
``follower_last_event_id``                id of the last event applied
``in_flight_requests``                    RPCs being served (``banditroute.service.api.limits``)

========================================  =====================================================

Label sets are bounded (:class:`LabelCap`): each of ``route``, ``policy``, ``variant`` and
``model`` takes at most ``max_label_values`` (default 50) distinct values per process; later
values are counted under ``other``. A decision outside an experiment has ``variant="none"``.
Other modules adding series keep these label names (``route``, ``model``, ``variant``).

Examples
--------
>>> m = Metrics()
>>> m.observe_rpc("Route", "OK", 0.002)
>>> m.decision("gpt-4o-mini", route="default", policy="default")
>>> m.value("banditroute_decisions_total", model="gpt-4o-mini", route="default",
...         policy="default", variant="none")
1.0
>>> m.spend(0.25, route="default", model="gpt-4o-mini")
>>> m.value("banditroute_spend_usd_total", route="default", model="gpt-4o-mini", variant="none")
0.25
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

__all__ = ["OTHER", "LabelCap", "Metrics", "WsgiApp", "metrics_port_for_worker"]

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


#: The label value standing for every value past a :class:`LabelCap`'s limit.
OTHER = "other"


class LabelCap:
    """Bounds the distinct values of one label: the first ``limit`` pass, later ones are
    :data:`OTHER`; ``""`` becomes ``empty`` (e.g. ``"none"`` for the variant outside an
    experiment).

    >>> cap = LabelCap(2)
    >>> [cap("a"), cap("b"), cap("c"), cap("a"), cap("")]
    ['a', 'b', 'other', 'a', 'other']
    >>> LabelCap(5, empty="none")("")
    'none'
    """

    def __init__(self, limit: int, *, empty: str = "") -> None:
        self.limit = limit
        self.empty = empty
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        value = value or self.empty
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value


def metrics_port_for_worker(base_port: int, worker_index: int) -> int:
    """Metrics port of worker ``worker_index``: ``base_port + worker_index`` (0 = disabled).

    >>> metrics_port_for_worker(9464, 1), metrics_port_for_worker(0, 3)
    (9465, 0)
    """
    return 0 if base_port == 0 else base_port + worker_index


class Metrics:
    """The metrics of one process, in a private registry (so tests can build many).

    ``max_label_values`` bounds each of the labels route, policy, variant and model
    (:class:`LabelCap`).
    """

    def __init__(self, max_label_values: int = 50) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "banditroute_"
        self._route = LabelCap(max_label_values, empty="default")
        self._policy = LabelCap(max_label_values, empty="none")
        self._variant = LabelCap(max_label_values, empty="none")
        self._model = LabelCap(max_label_values, empty="none")
        self.decisions = Counter(
            p + "decisions",
            "Route decisions by route, policy, experiment variant and model",
            ["route", "policy", "variant", "model"],
            registry=r,
        )
        self.spend_usd = Counter(
            p + "spend_usd",
            "USD spent (cost of accepted outcomes) by route, model and experiment variant",
            ["route", "model", "variant"],
            registry=r,
        )
        self.replays = Counter(p + "route_replays", "Route calls replayed", registry=r)
        self.outcomes = Counter(p + "outcomes", "Outcomes by result", ["result"], registry=r)
        self.feedback = Counter(p + "feedback", "Feedback by result", ["result"], registry=r)
        self.reward = Histogram(
            p + "reward",
            "Rewards of accepted outcomes and feedback by route, policy and variant",
            ["route", "policy", "variant"],
            buckets=_REWARD_BUCKETS,
            registry=r,
        )
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
        self.budget_remaining = Gauge(p + "budget_remaining_usd", "Money left this budget period",
                                      ["route"], registry=r)
        self.pacing_lambda = Gauge(p + "pacing_lambda", "Budget controller lambda", ["route"],
                                   registry=r)
        self.pacing_cost_weight = Gauge(p + "pacing_cost_weight",
                                        "Budget controller cost weight (USD^-1)", ["route"],
                                        registry=r)
        self._rpc_children: dict[tuple[str, str], Histogram] = {}
        self._decision_children: dict[tuple[str, str, str, str], Counter] = {}
        # Labelled children by their raw label values: labels() costs a lock and several
        # dict and string operations; outcomes count three series per item.
        self._outcome_children: dict[str, Counter] = {}
        self._reward_children: dict[tuple[str, str, str], Histogram] = {}
        self._spend_children: dict[tuple[str, str, str], Counter] = {}
        self._mounted: WsgiApp | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record one finished RPC."""
        key = (method, code)
        child = self._rpc_children.get(key)
        if child is None:
            child = self._rpc_children[key] = self.rpc_duration.labels(method, code)
        child.observe(seconds)

    def decision(self, model: str, *, route: str = "", policy: str = "", variant: str = "") -> None:
        """Count one decision for ``model`` on ``route`` by ``policy`` (experiment ``variant``)."""
        key = (route, policy, variant, model)
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children[key] = self.decisions.labels(
                route=self._route(route),
                policy=self._policy(policy),
                variant=self._variant(variant),
                model=self._model(model),
            )
        child.inc()

    def outcomes_counter(self, result: str) -> Counter:
        """The ``outcomes_total`` child of ``result`` (ok, duplicate, rejected)."""
        child = self._outcome_children.get(result)
        if child is None:
            child = self._outcome_children[result] = self.outcomes.labels(result)
        return child

    def observe_reward(
        self, value: float, *, route: str = "", policy: str = "", variant: str = ""
    ) -> None:
        """Observe one reward of an accepted outcome or piece of feedback."""
        key = (route, policy, variant)
        child = self._reward_children.get(key)
        if child is None:
            child = self._reward_children[key] = self.reward.labels(
                route=self._route(route),
                policy=self._policy(policy),
                variant=self._variant(variant),
            )
        child.observe(value)

    def spend(self, usd: float, *, route: str = "", model: str = "", variant: str = "") -> None:
        """Add ``usd`` (the cost of an accepted outcome) to the spend of its decision."""
        key = (route, model, variant)
        child = self._spend_children.get(key)
        if child is None:
            child = self._spend_children[key] = self.spend_usd.labels(
                route=self._route(route), model=self._model(model), variant=self._variant(variant)
            )
        child.inc(max(usd, 0.0))

    def budget(self, route: str, *, lam: float, cost_weight: float,
               remaining_usd: float | None) -> None:
        """Set a budgeted route's controller gauges (the follower, after applying events)."""
        label = self._route(route)
        self.pacing_lambda.labels(route=label).set(lam)
        self.pacing_cost_weight.labels(route=label).set(cost_weight)
        if remaining_usd is not None:
            self.budget_remaining.labels(route=label).set(remaining_usd)

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
