"""Admin API and authentication on a real server: tokens, keys, config reaching every process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, rpc_code

UNAUTH = grpc.StatusCode.UNAUTHENTICATED


def _eventually(check: Callable[[], bool], polls: int = 200) -> bool:
    for _ in range(polls):
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def stubs(grpc_server: InProcessServer) -> Any:
    with grpc.insecure_channel(grpc_server.address) as channel:
        yield (
            admin_pb2_grpc.AdminStub(channel),
            router_pb2_grpc.RouterStub(channel),
            grpc_server.admin_metadata,
        )


def test_admin_requires_the_token(stubs: Any) -> None:
    admin, _, md = stubs
    req = admin_pb2.ListModelsRequest()
    assert rpc_code(lambda: admin.ListModels(req)) == UNAUTH
    assert rpc_code(lambda: admin.ListModels(req, metadata=(("authorization", "Bearer no"),))) == (
        UNAUTH
    )
    assert rpc_code(lambda: admin.ListModels(req, metadata=(("authorization", "Basic x"),))) == (
        UNAUTH
    )
    assert len(admin.ListModels(req, metadata=md).models) >= 2


def test_admin_manages_models_policies_routes(stubs: Any) -> None:
    admin, router, md = stubs
    admin.PutModel(
        admin_pb2.PutModelRequest(
            model=admin_pb2.Model(
                id="tiny",
                provider="local",
                input_usd_per_mtok=0.01,
                output_usd_per_mtok=0.02,
                enabled=True,
            )
        ),
        metadata=md,
    )
    p1 = admin.PutPolicy(
        admin_pb2.PutPolicyRequest(name="eg", algorithm="epsilon_greedy"), metadata=md
    )
    p2 = admin.PutPolicy(
        admin_pb2.PutPolicyRequest(name="eg", algorithm="epsilon_greedy"), metadata=md
    )
    assert (p1.version, p2.version) == (1, 2)
    route = admin.PutRoute(
        admin_pb2.PutRouteRequest(
            route=admin_pb2.RouteConfig(name="chat", policy="eg", models=["tiny", "gpt-4o"])
        ),
        metadata=md,
    )
    assert route.policy == "eg" and list(route.models) == ["tiny", "gpt-4o"]
    # the change is live on this process at once
    reply = router.Route(router_pb2.RouteRequest(prompt="hi", route="chat"))
    assert reply.model in {"tiny", "gpt-4o"} and (reply.policy, reply.policy_version) == ("eg", 2)
    state = admin.GetPolicyState(admin_pb2.GetPolicyStateRequest(name="eg"), metadata=md)
    assert state.policy.version == 2 and "tiny" in {a.model for a in state.arms}


ADMIN_ERRORS = [
    (
        "unknown-algorithm",
        lambda a, md: a.PutPolicy(
            admin_pb2.PutPolicyRequest(name="x", algorithm="nope"), metadata=md
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "negative-price",
        lambda a, md: a.PutModel(
            admin_pb2.PutModelRequest(model=admin_pb2.Model(id="m", input_usd_per_mtok=-1)),
            metadata=md,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "route-unknown-policy",
        lambda a, md: a.PutRoute(
            admin_pb2.PutRouteRequest(route=admin_pb2.RouteConfig(name="r", policy="ghost")),
            metadata=md,
        ),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "route-unknown-model",
        lambda a, md: a.PutRoute(
            admin_pb2.PutRouteRequest(
                route=admin_pb2.RouteConfig(name="r", policy="default", models=["ghost"])
            ),
            metadata=md,
        ),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "state-unknown-policy",
        lambda a, md: a.GetPolicyState(admin_pb2.GetPolicyStateRequest(name="ghost"), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "revoke-unknown-key",
        lambda a, md: a.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id="key_nope"), metadata=md),
        grpc.StatusCode.NOT_FOUND,
    ),
]


@pytest.mark.parametrize(
    ("call", "code"), [(c, s) for _, c, s in ADMIN_ERRORS], ids=[i for i, _, _ in ADMIN_ERRORS]
)
def test_admin_rejects_bad_requests(stubs: Any, call: Any, code: grpc.StatusCode) -> None:
    admin, _, md = stubs
    assert rpc_code(lambda: call(admin, md)) == code


def test_api_keys_bind_the_tenant(fresh_db_url: str) -> None:
    from tests.helpers import register_demo

    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url, require_api_keys=True)
    try:
        with grpc.insecure_channel(server.address) as channel:
            admin = admin_pb2_grpc.AdminStub(channel)
            router = router_pb2_grpc.RouterStub(channel)
            md = server.admin_metadata
            key = admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(tenant="acme"), metadata=md)
            other = admin.CreateApiKey(
                admin_pb2.CreateApiKeyRequest(tenant="umbrella"), metadata=md
            )
            as_acme = (("x-api-key", key.key),)
            req = router_pb2.RouteRequest(prompt="hi")
            assert rpc_code(lambda: router.Route(req)) == UNAUTH
            assert (
                rpc_code(lambda: router.Route(req, metadata=(("x-api-key", "br_forged"),)))
                == UNAUTH
            )
            reply = router.Route(req, metadata=as_acme)  # shared route "default", tenant acme
            wrong = router_pb2.RouteRequest(prompt="hi", tenant="umbrella")
            assert rpc_code(lambda: router.Route(wrong, metadata=as_acme)) == (
                grpc.StatusCode.PERMISSION_DENIED
            )
            outcome = router_pb2.RecordOutcomeRequest(decision_id=reply.decision_id, quality=1.0)
            assert (
                rpc_code(
                    lambda: router.RecordOutcome(outcome, metadata=(("x-api-key", other.key),))
                )
                == grpc.StatusCode.PERMISSION_DENIED
            )
            assert router.RecordOutcome(outcome, metadata=as_acme).event_id > 0
            admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=key.key_id), metadata=md)
            assert rpc_code(lambda: router.Route(req, metadata=as_acme)) == UNAUTH
    finally:
        server.stop()


def test_config_changes_reach_another_process(grpc_server: InProcessServer) -> None:
    other = InProcessServer(grpc_server.db_url)
    try:
        with (
            grpc.insecure_channel(grpc_server.address) as a,
            grpc.insecure_channel(other.address) as b,
        ):
            admin = admin_pb2_grpc.AdminStub(a)
            admin.PutModel(
                admin_pb2.PutModelRequest(
                    model=admin_pb2.Model(id="fresh-model", output_usd_per_mtok=1.0, enabled=True)
                ),
                metadata=grpc_server.admin_metadata,
            )
            router_b = router_pb2_grpc.RouterStub(b)
            req = router_pb2.RouteRequest(prompt="hi", candidates=["fresh-model"])

            def served() -> bool:
                return rpc_code(lambda: router_b.Route(req)) == grpc.StatusCode.OK

            assert _eventually(served)
    finally:
        other.stop()


def test_disabled_models_are_never_routed(stubs: Any) -> None:
    admin, router, md = stubs
    models = [m.id for m in admin.ListModels(admin_pb2.ListModelsRequest(), metadata=md).models]
    off = models[0]
    admin.PutModel(
        admin_pb2.PutModelRequest(model=admin_pb2.Model(id=off, output_usd_per_mtok=1.0)),
        metadata=md,
    )
    listed = admin.ListModels(admin_pb2.ListModelsRequest(), metadata=md).models
    assert off not in {m.id for m in listed}
    for i in range(20):
        reply = router.Route(router_pb2.RouteRequest(prompt=f"q{i}"))
        assert reply.model != off and off not in {f.model for f in reply.fallbacks}
    only_off = router_pb2.RouteRequest(prompt="q", candidates=[off])
    assert rpc_code(lambda: router.Route(only_off)) == grpc.StatusCode.FAILED_PRECONDITION
