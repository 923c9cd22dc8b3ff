"""Authentication and tenant isolation on a real server with API keys required.

Admin RPCs need the admin token; Router RPCs need a valid, unrevoked tenant key; a tenant
can only touch its own routes, decisions and feedback; keys are stored only as SHA-256.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import grpc
import psycopg
import pytest

from banditroute.service.config import libpq_url
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import rpc_code, spawn_server

ADMIN_TOKEN = "admin-secret-for-tenant-tests"
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
#: Polls (with a pause) for a revocation to reach the server's config cache: a bound, not a
#: timing assertion.
REVOKE_POLLS = 100


@pytest.fixture
def keyed_server(fresh_db_url: str) -> Iterator[Any]:
    server = spawn_server(
        fresh_db_url,
        env={"BANDITROUTE_REQUIRE_API_KEYS": "true", "BANDITROUTE_ADMIN_TOKEN": ADMIN_TOKEN},
        args=("--demo",),
    )
    try:
        with grpc.insecure_channel(server.address) as channel:
            yield server, fresh_db_url, channel
    finally:
        server.stop()


def _setup_tenants(admin: admin_pb2_grpc.AdminStub) -> dict[str, str]:
    keys = {}
    for tenant in ("acme", "globex"):
        admin.PutPolicy(
            admin_pb2.PutPolicyRequest(name=f"{tenant}-policy", algorithm="linucb"),
            metadata=ADMIN,
        )
        admin.PutRoute(
            admin_pb2.PutRouteRequest(
                route=admin_pb2.RouteConfig(
                    tenant=tenant, name=f"{tenant}-chat", policy=f"{tenant}-policy"
                )
            ),
            metadata=ADMIN,
        )
        created = admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(tenant=tenant, label="test"), metadata=ADMIN
        )
        assert created.tenant == tenant and created.key and created.key_id
        keys[tenant] = created.key
        keys[f"{tenant}-id"] = created.key_id
    return keys


def _eventually(check: Any) -> bool:
    for _ in range(REVOKE_POLLS):
        if check():
            return True
        time.sleep(0.1)
    return False


def test_admin_rpcs_need_the_admin_token(keyed_server: Any) -> None:
    _, _, channel = keyed_server
    admin = admin_pb2_grpc.AdminStub(channel)
    request = admin_pb2.ListModelsRequest()
    assert rpc_code(lambda: admin.ListModels(request)) == grpc.StatusCode.UNAUTHENTICATED
    for metadata in (
        (("authorization", "Bearer wrong"),),
        (("authorization", ADMIN_TOKEN),),  # no scheme
        (("authorization", f"Basic {ADMIN_TOKEN}"),),
        (("x-api-key", ADMIN_TOKEN),),
    ):
        code = rpc_code(lambda metadata=metadata: admin.ListModels(request, metadata=metadata))
        assert code == grpc.StatusCode.UNAUTHENTICATED, metadata
    assert admin.ListModels(request, metadata=ADMIN).models


def _tenant_stubs(
    keyed_server: Any,
) -> tuple[str, admin_pb2_grpc.AdminStub, router_pb2_grpc.RouterStub, dict[str, str]]:
    """(database URL, admin stub, router stub, keys of the two tenants set up)."""
    _, db_url, channel = keyed_server
    admin = admin_pb2_grpc.AdminStub(channel)
    return db_url, admin, router_pb2_grpc.RouterStub(channel), _setup_tenants(admin)


def test_router_rpcs_need_a_valid_key_and_stay_within_the_tenant(keyed_server: Any) -> None:
    db_url, _, router, keys = _tenant_stubs(keyed_server)
    acme = (("x-api-key", keys["acme"]),)
    globex = (("x-api-key", keys["globex"]),)

    route = router_pb2.RouteRequest(prompt="hello", route="acme-chat")
    assert rpc_code(lambda: router.Route(route)) == grpc.StatusCode.UNAUTHENTICATED
    bogus = (("x-api-key", "brk_not_a_real_key"),)
    assert rpc_code(lambda: router.Route(route, metadata=bogus)) == grpc.StatusCode.UNAUTHENTICATED
    # The admin token is not a tenant key.
    assert rpc_code(lambda: router.Route(route, metadata=ADMIN)) == grpc.StatusCode.UNAUTHENTICATED

    decision = router.Route(route, metadata=acme)
    assert decision.decision_id
    # Another tenant's route does not exist for globex; naming acme as tenant is refused.
    assert rpc_code(lambda: router.Route(route, metadata=globex)) == grpc.StatusCode.NOT_FOUND
    as_acme = router_pb2.RouteRequest(prompt="hello", route="acme-chat", tenant="acme")
    assert rpc_code(lambda: router.Route(as_acme, metadata=globex)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    # globex cannot write outcomes or feedback on acme's decision.
    outcome = router_pb2.RecordOutcomeRequest(decision_id=decision.decision_id, quality=0.0)
    feedback = router_pb2.SubmitFeedbackRequest(decision_id=decision.decision_id, rating=0.0)
    denied = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND}
    assert rpc_code(lambda: router.RecordOutcome(outcome, metadata=globex)) in denied
    assert rpc_code(lambda: router.SubmitFeedback(feedback, metadata=globex)) in denied
    batch = router.RecordOutcomes(
        router_pb2.RecordOutcomesRequest(outcomes=[outcome]), metadata=globex
    )
    assert batch.accepted == 0 and batch.results[0].code in {c.value[0] for c in denied}
    with psycopg.connect(libpq_url(db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM outcomes").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (0,)

    # acme itself can.
    good = router_pb2.RecordOutcomeRequest(decision_id=decision.decision_id, quality=1.0)
    assert not router.RecordOutcome(good, metadata=acme).duplicate
    rating = router_pb2.SubmitFeedbackRequest(decision_id=decision.decision_id, rating=1.0)
    router.SubmitFeedback(rating, metadata=acme)
    with psycopg.connect(libpq_url(db_url)) as conn:
        rows = conn.execute("SELECT tenant, quality FROM outcomes").fetchall()
        assert rows == [("acme", 1.0)]
        assert conn.execute("SELECT tenant, rating FROM feedback").fetchall() == [("acme", 1.0)]


def test_keys_are_stored_hashed_and_revocation_locks_the_tenant_out(keyed_server: Any) -> None:
    db_url, admin, router, keys = _tenant_stubs(keyed_server)
    acme = (("x-api-key", keys["acme"]),)
    route = router_pb2.RouteRequest(prompt="hello", route="acme-chat")
    assert router.Route(route, metadata=acme).decision_id

    with psycopg.connect(libpq_url(db_url)) as conn:
        stored = conn.execute("SELECT key_id, tenant, key_hash FROM api_keys").fetchall()
        dump = conn.execute("SELECT row_to_json(k)::text FROM api_keys k").fetchall()
    hashes = {bytes(h) for _, _, h in stored}
    assert hashlib.sha256(keys["acme"].encode()).digest() in hashes
    assert all(keys["acme"] not in text and keys["globex"] not in text for (text,) in dump)

    admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=keys["acme-id"]), metadata=ADMIN)
    assert _eventually(
        lambda: (
            rpc_code(lambda: router.Route(route, metadata=acme)) == grpc.StatusCode.UNAUTHENTICATED
        )
    ), "revoked key still accepted"
    # Revoking one tenant's key leaves the other's working.
    globex = (("x-api-key", keys["globex"]),)
    other = router_pb2.RouteRequest(prompt="hello", route="globex-chat")
    assert router.Route(other, metadata=globex).decision_id
    unknown = admin_pb2.RevokeApiKeyRequest(key_id="no-such-key")
    assert rpc_code(lambda: admin.RevokeApiKey(unknown, metadata=ADMIN)) == (
        grpc.StatusCode.NOT_FOUND
    )


def test_fuzz_cross_tenant_writes_never_succeed(keyed_server: Any) -> None:
    """Random outcomes, batches and feedback from one tenant on another's decisions."""
    from hypothesis import given
    from hypothesis import strategies as st

    from tests.fault.fuzzing import fuzz_settings
    from tests.fault.strategies import nasty_floats, nasty_text

    db_url, _, router, keys = _tenant_stubs(keyed_server)
    acme = (("x-api-key", keys["acme"]),)
    globex = (("x-api-key", keys["globex"]),)
    victims = [
        router.Route(
            router_pb2.RouteRequest(prompt=f"acme {i}", route="acme-chat"), metadata=acme
        ).decision_id
        for i in range(3)
    ]
    allowed = {
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
    allowed_numbers = {code.value[0] for code in allowed}

    @fuzz_settings(60)
    @given(
        victim=st.sampled_from(victims),
        value=st.one_of(st.floats(0.0, 1.0), nasty_floats()),
        text=nasty_text(max_size=20),
        kind=st.sampled_from(["outcome", "batch", "feedback"]),
    )
    def check(victim: str, value: float, text: str, kind: str) -> None:
        if kind == "outcome":
            request = router_pb2.RecordOutcomeRequest(decision_id=victim, quality=value)
            assert rpc_code(lambda: router.RecordOutcome(request, metadata=globex)) in allowed
        elif kind == "batch":
            batch = router_pb2.RecordOutcomesRequest(
                outcomes=[router_pb2.RecordOutcomeRequest(decision_id=victim, success=True)]
            )
            reply = router.RecordOutcomes(batch, metadata=globex)
            assert reply.accepted == 0 and reply.results[0].code in allowed_numbers
        else:
            rating = router_pb2.SubmitFeedbackRequest(
                decision_id=victim, rating=value, comment=text, feedback_id=text
            )
            assert rpc_code(lambda: router.SubmitFeedback(rating, metadata=globex)) in allowed

    check()
    with psycopg.connect(libpq_url(db_url)) as conn:
        assert conn.execute("SELECT count(*) FROM outcomes").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
