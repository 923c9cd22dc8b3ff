"""SQL only through bound parameters: names and ids that look like SQL injection round-trip
unchanged through every API path that stores or looks them up, and nothing else happens.
"""

from __future__ import annotations

from typing import Any

import grpc
import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.fault.fuzzing import count
from tests.fault.strategies import INJECTION_STRINGS
from tests.helpers import rpc_code

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


_REFUSED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}


@pytest.mark.parametrize("evil", INJECTION_STRINGS)
def test_injection_looking_values_round_trip_or_are_refused(grpc_server: Any, evil: str) -> None:
    md = _metadata(grpc_server)
    tables_before = _tables(grpc_server.db_url)
    with grpc.insecure_channel(grpc_server.address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        router = router_pb2_grpc.RouterStub(channel)
        # Free-text fields are stored exactly as given.
        model = admin_pb2.Model(
            id="model-safe-id",
            provider=evil,
            input_usd_per_mtok=1.0,
            output_usd_per_mtok=2.0,
            enabled=True,
        )
        admin.PutModel(admin_pb2.PutModelRequest(model=model), metadata=md)
        listed = admin.ListModels(admin_pb2.ListModelsRequest(include_disabled=True), metadata=md)
        assert model in listed.models
        key = admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(tenant="tenant-a", label=evil), metadata=md
        )
        # Names are validated identifiers: injection text is refused or simply not found.
        lookups = [
            lambda: admin.GetPolicyState(admin_pb2.GetPolicyStateRequest(name=evil), metadata=md),
            lambda: admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=evil), metadata=md),
            lambda: admin.PutRoute(
                admin_pb2.PutRouteRequest(
                    route=admin_pb2.RouteConfig(name=evil, policy="default-linucb")
                ),
                metadata=md,
            ),
            lambda: admin.PutPolicy(
                admin_pb2.PutPolicyRequest(name=evil, algorithm="linucb"), metadata=md
            ),
            lambda: router.Route(router_pb2.RouteRequest(prompt="p", route=evil)),
            lambda: router.RecordOutcome(
                router_pb2.RecordOutcomeRequest(decision_id=evil, quality=1.0)
            ),
        ]
        for number, lookup in enumerate(lookups):
            assert rpc_code(lookup) in _REFUSED, f"lookup {number}"
        listed_routes = rpc_code(
            lambda: admin.ListRoutes(admin_pb2.ListRoutesRequest(tenant=evil), metadata=md)
        )
        assert listed_routes == grpc.StatusCode.INVALID_ARGUMENT

        request = router_pb2.RouteRequest(
            prompt=f"prompt {evil}",
            tenant=evil,  # a tenant without routes of its own uses the shared ones
            unit_id=evil,
            request_id=evil,
            categorical_context={evil: evil},
        )
        decision = router.Route(request)
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

    with psycopg.connect(libpq_url(grpc_server.db_url)) as conn:
        row = conn.execute(
            "SELECT tenant, unit_id, request_id, categorical_context FROM decisions "
            "WHERE decision_id = %s",
            (decision.decision_id,),
        ).fetchone()
        assert row == (evil, evil, evil, {evil: evil})
        outcome = conn.execute(
            "SELECT error FROM outcomes WHERE decision_id = %s", (decision.decision_id,)
        ).fetchone()
        assert outcome == (evil,)
        feedback = conn.execute(
            "SELECT comment, source, feedback_key FROM feedback WHERE decision_id = %s",
            (decision.decision_id,),
        ).fetchone()
        assert feedback == (evil, evil, evil)
        label = conn.execute(
            "SELECT label FROM api_keys WHERE key_id = %s", (key.key_id,)
        ).fetchone()
        assert label == (evil,)
        counts = {t: count(conn, f"SELECT count(*) FROM {t}") for t in TABLES}
    assert _tables(grpc_server.db_url) == tables_before
    assert counts["decisions"] == 1 and counts["outcomes"] == 1 and counts["feedback"] == 1
    assert counts["routes"] == 1 and counts["policies"] == 1
