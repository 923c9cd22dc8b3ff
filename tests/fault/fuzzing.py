"""Shared pieces of the fuzzers: the RPC catalogue, a raw-bytes caller and DB invariants."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import psycopg
from google.protobuf import descriptor as _descriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from banditroute.service.config import libpq_url
from banditroute.v1 import admin_pb2, router_pb2

__all__ = [
    "BAD_CODES",
    "RPCS",
    "RawCaller",
    "Rpc",
    "assert_db_invariants",
    "assert_serving",
    "count",
    "db_counts",
    "fuzz_settings",
]

#: A server must never answer these to a client's input.
BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@dataclass(frozen=True)
class Rpc:
    """One method of the API."""

    service: str
    name: str
    input: _descriptor.Descriptor
    output: _descriptor.Descriptor

    @property
    def path(self) -> str:
        return f"/banditroute.v1.{self.service}/{self.name}"

    @property
    def admin(self) -> bool:
        return self.service == "Admin"


RPCS: tuple[Rpc, ...] = tuple(
    Rpc(service.name, method.name, method.input_type, method.output_type)
    for module in (router_pb2, admin_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
)


class RawCaller:
    """Sends raw request bytes to any method and returns ``(code, response bytes or None)``."""

    def __init__(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]] = ()) -> None:
        self._channel = channel
        self._metadata = tuple(metadata)
        self._callables: dict[str, Any] = {}

    def __call__(
        self, rpc: Rpc, data: bytes, metadata: Sequence[tuple[str, str]] | None = None
    ) -> tuple[grpc.StatusCode, bytes | None, str]:
        call = self._callables.get(rpc.path)
        if call is None:
            call = self._callables[rpc.path] = self._channel.unary_unary(rpc.path)
        try:
            response = call(
                data, timeout=60, metadata=self._metadata if metadata is None else metadata
            )
        except grpc.RpcError as exc:
            return exc.code(), None, exc.details() or ""
        return grpc.StatusCode.OK, response, ""


def fuzz_settings(examples: int) -> Any:
    """Hypothesis settings of the fuzzers: ``examples`` examples, the same ones every run.

    No deadline (calls cross a network), no example database, no health checks.
    """
    from hypothesis import HealthCheck, settings

    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def assert_serving(channel: grpc.Channel) -> None:
    """The server answers health checks with SERVING."""
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _connect(db_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(libpq_url(db_url), autocommit=True)


def count(conn: psycopg.Connection[Any], query: str) -> int:
    """The single integer a ``SELECT count(*) ...`` returns."""
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def db_counts(db_url: str) -> dict[str, int]:
    """Row counts of the tables a request can write."""
    tables = ("models", "policies", "routes", "api_keys", "decisions", "outcomes", "feedback")
    with _connect(db_url) as conn:
        return {t: count(conn, f"SELECT count(*) FROM {t}") for t in tables}


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def assert_db_invariants(db_url: str) -> None:
    """Nothing a validated write could have produced is violated by any stored row."""
    with _connect(db_url) as conn:
        for mid, pin, pout in conn.execute(
            "SELECT id, input_usd_per_mtok, output_usd_per_mtok FROM models"
        ):
            assert mid, "empty model id stored"
            assert _finite(pin, pout) and pin >= 0 and pout >= 0, f"bad price on {mid!r}"
        for quality, cost, latency, reward, tin, tout in conn.execute(
            "SELECT quality, cost_usd, latency_ms, reward, input_tokens, output_tokens "
            "FROM outcomes"
        ):
            assert quality is None or 0.0 <= quality <= 1.0, f"quality {quality} stored"
            assert _finite(cost, latency, reward), "non-finite outcome number stored"
            assert cost is None or cost >= 0, f"negative cost {cost} stored"
            assert latency is None or latency >= 0, f"negative latency {latency} stored"
            assert tin is None or tin >= 0, f"negative input_tokens {tin} stored"
            assert tout is None or tout >= 0, f"negative output_tokens {tout} stored"
        for (rating,) in conn.execute("SELECT rating FROM feedback"):
            assert 0.0 <= rating <= 1.0, f"rating {rating} stored"
        for (key_hash,) in conn.execute("SELECT key_hash FROM api_keys"):
            assert len(bytes(key_hash)) == 32, "api key stored other than as a sha256 digest"
        orphans = count(
            conn,
            "SELECT count(*) FROM outcomes o LEFT JOIN decisions d "
            "ON d.decision_id = o.decision_id WHERE d.decision_id IS NULL",
        )
        assert orphans == 0, "outcome stored for a decision that does not exist"
        orphans = count(
            conn,
            "SELECT count(*) FROM feedback f LEFT JOIN decisions d "
            "ON d.decision_id = f.decision_id WHERE d.decision_id IS NULL",
        )
        assert orphans == 0, "feedback stored for a decision that does not exist"
        cross = count(
            conn,
            "SELECT count(*) FROM outcomes o JOIN decisions d "
            "ON d.decision_id = o.decision_id WHERE d.tenant <> o.tenant",
        )
        assert cross == 0, "outcome stored under another tenant than its decision"
        cross = count(
            conn,
            "SELECT count(*) FROM feedback f JOIN decisions d "
            "ON d.decision_id = f.decision_id WHERE d.tenant <> f.tenant",
        )
        assert cross == 0, "feedback stored under another tenant than its decision"
