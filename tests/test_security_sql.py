"""SQL only through bound parameters: names and ids that look like SQL injection round-trip
unchanged through every API path that stores or looks them up, and nothing else happens.
"""

from __future__ import annotations

from typing import Any

import grpc
import psycopg
import pytest
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc

from service.config import libpq_url
from tests.fault.strategies import INJECTION_STRINGS

TABLES = ("models", "policies", "routes", "api_keys", "decisions", "outcomes", "feedback")


def _metadata(server: Any) -> tuple[tuple[str, str], ...]:
    token = getattr(server, "admin_token", None)
    return (("authorization", f"Bearer {token}"),) if token else ()


def _tables(db_url: str) -> set[str]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }


@pytest.mark.parametrize("evil", INJECTION_STRINGS)
def test_injection_looking_names_round_trip_through_admin_and_router(
    grpc_server: Any, evil: str
) -> None:
    md = _metadata(grpc_server)
    tables_before = _tables(grpc_server.db_url)
    with grpc.insecure_channel(grpc_server.address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        router = router_pb2_grpc.RouterStub(channel)
        model = admin_pb2.Model(
            id=f"model {evil}",
            provider=evil,
            input_usd_per_mtok=1.0,
            output_usd_per_mtok=2.0,
            enabled=True,
        )
        assert admin.PutModel(admin_pb2.PutModelRequest(model=model), metadata=md).id == model.id
        policy = admin.PutPolicy(
            admin_pb2.PutPolicyRequest(name=f"policy {evil}", algorithm="linucb"), metadata=md
        )
        assert policy.name == f"policy {evil}"
        route_config = admin_pb2.RouteConfig(
            tenant=evil, name=f"route {evil}", policy=policy.name, models=[model.id]
        )
        admin.PutRoute(admin_pb2.PutRouteRequest(route=route_config), metadata=md)

        listed = admin.ListModels(admin_pb2.ListModelsRequest(include_disabled=True), metadata=md)
        assert model in listed.models
        routes = admin.ListRoutes(admin_pb2.ListRoutesRequest(tenant=evil), metadata=md).routes
        assert [(r.tenant, r.name) for r in routes] == [(evil, route_config.name)]
        state = admin.GetPolicyState(admin_pb2.GetPolicyStateRequest(name=policy.name), metadata=md)
        assert state.policy.name == policy.name

        request = router_pb2.RouteRequest(
            prompt=f"prompt {evil}",
            route=route_config.name,
            tenant=evil,
            unit_id=evil,
            request_id=evil,
            categorical_context={evil: evil},
        )
        decision = router.Route(request)
        assert decision.model == model.id
        assert router.Route(request).replayed
        router.RecordOutcome(
            router_pb2.RecordOutcomeRequest(
                decision_id=decision.decision_id, quality=1.0, error=evil
            )
        )
        router.SubmitFeedback(
            router_pb2.SubmitFeedbackRequest(
                decision_id=decision.decision_id,
                rating=1.0,
                comment=evil,
                source=evil,
                feedback_id=evil,
            )
        )
        # An injection-looking decision id is just an invalid id.
        with pytest.raises(grpc.RpcError) as info:
            router.RecordOutcome(router_pb2.RecordOutcomeRequest(decision_id=evil, quality=1.0))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with psycopg.connect(libpq_url(grpc_server.db_url)) as conn:
        row = conn.execute(
            "SELECT tenant, route, unit_id, request_id, categorical_context, model "
            "FROM decisions WHERE decision_id = %s",
            (decision.decision_id,),
        ).fetchone()
        assert row == (evil, route_config.name, evil, evil, {evil: evil}, model.id)
        outcome = conn.execute(
            "SELECT error FROM outcomes WHERE decision_id = %s", (decision.decision_id,)
        ).fetchone()
        assert outcome == (evil,)
        feedback = conn.execute(
            "SELECT comment, source FROM feedback WHERE decision_id = %s",
            (decision.decision_id,),
        ).fetchone()
        assert feedback == (evil, evil)
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert _tables(grpc_server.db_url) == tables_before
    assert counts["decisions"] == 1 and counts["outcomes"] == 1 and counts["feedback"] == 1
