"""Admin functions: validation errors, versioning, config changes, API keys, the demo pool."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from banditroute.service.core import admin, api_keys, demo
from banditroute.service.errors import InvalidArgument, NotFound, Unauthenticated, Unavailable
from banditroute.service.storage.database import create_engine
from banditroute.service.storage.models import ApiKey, ConfigChange


@pytest.fixture
def engine(fresh_db_url: str) -> Iterator[Engine]:
    engine = create_engine(fresh_db_url)
    yield engine
    engine.dispose()


def config_version(engine: Engine) -> int:
    with admin.transaction(engine) as s:
        return int(s.scalar(select(func.coalesce(func.max(ConfigChange.id), 0))) or 0)


def test_put_model_creates_then_updates_and_bumps_config_version(engine: Engine) -> None:
    with admin.transaction(engine) as s:
        admin.put_model(s, "m1", provider="p", input_usd_per_mtok=1.0, output_usd_per_mtok=2.0)
    v1 = config_version(engine)
    with admin.transaction(engine) as s:
        updated = admin.put_model(s, "m1", provider="p", input_usd_per_mtok=3.0, enabled=False)
    assert updated == admin.ModelInfo("m1", "p", 3.0, 0.0, False)
    assert config_version(engine) > v1 > 0
    with admin.transaction(engine) as s:
        assert admin.list_models(s) == []
        assert [m.id for m in admin.list_models(s, include_disabled=True)] == ["m1"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"model_id": ""}, "model id", id="empty-id"),
        pytest.param({"model_id": "a b"}, "model id", id="space-in-id"),
        pytest.param({"model_id": "x" * 201}, "model id", id="long-id"),
        pytest.param({"input_usd_per_mtok": -1.0}, "input_usd_per_mtok", id="negative-price"),
        pytest.param({"output_usd_per_mtok": math.nan}, "output_usd_per_mtok", id="nan-price"),
        pytest.param({"output_usd_per_mtok": math.inf}, "output_usd_per_mtok", id="inf-price"),
        pytest.param({"provider": "bad\nprovider"}, "provider", id="control-char-provider"),
    ],
)
def test_put_model_rejects_bad_input(engine: Engine, kwargs: dict, fragment: str) -> None:
    args = {"model_id": "ok", **kwargs}
    with pytest.raises(InvalidArgument, match=fragment), admin.transaction(engine) as s:
        admin.put_model(s, **args)


def test_put_policy_adds_versions(engine: Engine) -> None:
    with admin.transaction(engine) as s:
        first = admin.put_policy(s, "p", "linucb", hyperparameters={"alpha": 0.5}, seed=7)
        second = admin.put_policy(s, "p", "epsilon_greedy", cost_weight=2.0)
    assert (first.version, second.version) == (1, 2)
    assert first.hyperparameters == {"alpha": 0.5} and first.seed == 7
    with admin.transaction(engine) as s:
        assert admin.get_policy(s, "p").version == 2
        assert admin.get_policy(s, "p", 1).algorithm == "linucb"
        assert [p.version for p in admin.list_policies(s, "p")] == [1, 2]
        with pytest.raises(NotFound):
            admin.get_policy(s, "p", 3)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        pytest.param({"algorithm": "nope"}, "unknown algorithm", id="unknown-algorithm"),
        pytest.param({"hyperparameters": {"beta": 1}}, "beta", id="unknown-hyperparameter"),
        pytest.param({"hyperparameters": {"alpha": -1.0}}, "alpha", id="bad-hyperparameter"),
        pytest.param({"hyperparameters": {"alpha": math.nan}}, "finite", id="nan-hyperparameter"),
        pytest.param({"cost_weight": -0.1}, "cost_weight", id="negative-cost-weight"),
        pytest.param({"feedback_weight": 1.5}, "feedback_weight", id="feedback-weight-over-1"),
        pytest.param({"seed": -1}, "seed", id="negative-seed"),
        pytest.param({"seed": 2**64 - 1}, "seed", id="seed-over-int64"),
        pytest.param({"name": "bad name"}, "policy name", id="bad-name"),
    ],
)
def test_put_policy_rejects_bad_input(engine: Engine, kwargs: dict, fragment: str) -> None:
    args = {"name": "p", "algorithm": "linucb", **kwargs}
    with pytest.raises(InvalidArgument, match=fragment), admin.transaction(engine) as s:
        admin.put_policy(s, **args)


def test_put_route_validates_policy_and_models(engine: Engine) -> None:
    with admin.transaction(engine) as s:
        admin.put_model(s, "m1")
        admin.put_policy(s, "p", "uniform")
    with pytest.raises(NotFound, match="policy 'missing'"), admin.transaction(engine) as s:
        admin.put_route(s, "r", "missing")
    with pytest.raises(NotFound, match="version 9"), admin.transaction(engine) as s:
        admin.put_route(s, "r", "p", policy_version=9)
    with pytest.raises(NotFound, match="m2"), admin.transaction(engine) as s:
        admin.put_route(s, "r", "p", models=["m1", "m2"])
    with pytest.raises(InvalidArgument, match="more than once"), admin.transaction(engine) as s:
        admin.put_route(s, "r", "p", models=["m1", "m1"])
    with pytest.raises(InvalidArgument, match="tenant"), admin.transaction(engine) as s:
        admin.put_route(s, "r", "p", tenant="a tenant")
    with admin.transaction(engine) as s:
        route = admin.put_route(s, "r", "p", tenant="acme", models=["m1"])
        admin.put_route(s, "r", "p")
    assert route == admin.RouteInfo("acme", "r", "p", 0, ["m1"])
    with admin.transaction(engine) as s:
        assert [r.tenant for r in admin.list_routes(s)] == ["", "acme"]
        assert [r.tenant for r in admin.list_routes(s, "acme")] == ["acme"]


def test_api_keys_are_hashed_and_revocable(engine: Engine) -> None:
    with admin.transaction(engine) as s:
        created = api_keys.create_api_key(s, "acme", "ci")
    assert created.key.startswith("br_") and created.key not in repr(created)
    with admin.transaction(engine) as s:
        stored = s.get(ApiKey, created.key_id)
        assert stored is not None and stored.key_hash == api_keys.hash_api_key(created.key)
        assert created.key.encode() not in stored.key_hash
        assert api_keys.authenticate_api_key(s, created.key) == "acme"
        with pytest.raises(Unauthenticated):
            api_keys.authenticate_api_key(s, created.key + "x")
    with admin.transaction(engine) as s:
        revoked = api_keys.revoke_api_key(s, created.key_id)
        again = api_keys.revoke_api_key(s, created.key_id)
    assert revoked.revoked_at is not None and again.revoked_at == revoked.revoked_at
    with admin.transaction(engine) as s:
        with pytest.raises(Unauthenticated):
            api_keys.authenticate_api_key(s, created.key)
        with pytest.raises(NotFound):
            api_keys.revoke_api_key(s, "key_missing")


def test_ensure_demo_registers_once_and_keeps_changes(engine: Engine) -> None:
    assert demo.register_demo_pool(engine) is True
    with admin.transaction(engine) as s:
        admin.put_model(s, "gpt-4o", provider="openai", input_usd_per_mtok=1.0)
    assert demo.register_demo_pool(engine) is False
    with admin.transaction(engine) as s:
        models = {m.id: m for m in admin.list_models(s)}
        assert set(models) == {m[0] for m in demo.DEMO_MODELS}
        assert models["gpt-4o"].input_usd_per_mtok == 1.0
        assert admin.get_policy(s, "default").algorithm == "linucb"
        assert [(r.tenant, r.name, r.policy) for r in admin.list_routes(s)] == [
            ("", "default", "default")
        ]


def test_transaction_on_unreachable_database_is_unavailable() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/none", connect_timeout_s=1)
    try:
        with pytest.raises(Unavailable), admin.transaction(engine) as s:
            admin.list_models(s)
    finally:
        engine.dispose()
