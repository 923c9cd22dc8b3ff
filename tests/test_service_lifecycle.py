"""Server lifecycle: graceful shutdown keeps every acknowledged write; metrics are exported."""

from __future__ import annotations

import threading
import uuid

import grpc
import psycopg

from banditroute.service.config import libpq_url
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.helpers import demo_router_with_metrics, register_demo, spawn_server


def test_sigterm_keeps_every_acknowledged_outcome(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    server = spawn_server(fresh_db_url)
    acked: list[str] = []
    with grpc.insecure_channel(server.address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        ids = [
            router.Route(router_pb2.RouteRequest(prompt=f"p{i}")).decision_id for i in range(300)
        ]
        half = threading.Event()

        def send(chunk: list[str]) -> None:
            for did in chunk:
                try:
                    router.RecordOutcome(
                        router_pb2.RecordOutcomeRequest(decision_id=did, quality=0.5), timeout=10
                    )
                except grpc.RpcError:
                    return  # the server is going away: this one was not acknowledged
                acked.append(did)
                if len(acked) >= 60:
                    half.set()

        threads = [threading.Thread(target=send, args=(ids[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        assert half.wait(60)
        code = server.stop()  # SIGTERM while outcomes are in flight
        for t in threads:
            t.join(30)
    assert code == 0
    with psycopg.connect(libpq_url(fresh_db_url)) as conn:
        stored = {
            str(r[0])
            for r in conn.execute(
                "SELECT decision_id FROM outcomes WHERE decision_id = ANY(%s)",
                ([uuid.UUID(d) for d in acked],),
            )
        }
    assert len(acked) >= 60 and stored == set(acked)


def test_metrics_are_exported(fresh_db_url: str) -> None:
    with demo_router_with_metrics(fresh_db_url) as (router, scrape):
        request = router_pb2.RouteRequest(prompt="count me", request_id="count-me")
        reply = router.Route(request)
        assert router.Route(request).replayed
        router.RecordOutcome(
            router_pb2.RecordOutcomeRequest(
                decision_id=reply.decision_id, quality=1.0, cost_usd=0.125
            )
        )
        body = scrape()
    labels = f'model="{reply.model}",policy="default",route="default",variant="none"'
    assert f"banditroute_decisions_total{{{labels}}} 1.0" in body
    assert "banditroute_route_replays_total 1.0" in body
    spend = f'banditroute_spend_usd_total{{model="{reply.model}",route="default",variant="none"}}'
    assert f"{spend} 0.125" in body
    assert 'banditroute_reward_count{policy="default",route="default",variant="none"} 1.0' in body
    assert 'banditroute_outcomes_total{result="ok"} 1.0' in body
    assert 'banditroute_rpc_duration_seconds_count{code="OK",method="Route"} 2.0' in body
    assert "banditroute_follower_last_event_id" in body
    assert "banditroute_write_batch_rows_count" in body
