"""Queries on the admin entities (models, policies, routes, API keys, config changes).

Repositories build ``Select`` statements and run them on a caller's ``Session``; the caller owns
the transaction. Every change goes through :func:`record_change`, which appends to
``config_changes`` and sends ``NOTIFY banditroute_config`` in the same transaction, so every
process reloads its configuration once the change commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session

from banditroute.service.storage.models import (
    CONFIG_CHANNEL,
    ApiKey,
    ConfigChange,
    Model,
    Policy,
    Route,
)

__all__ = [
    "ApiKeyRepository",
    "ModelRepository",
    "PolicyRepository",
    "RouteRepository",
    "record_change",
]


def record_change(
    session: Session,
    entity: str,
    key: str,
    action: str,
    detail: dict[str, Any] | None = None,
    actor: str = "",
) -> int:
    """Append an audit row, bump the config version and NOTIFY; return the new version."""
    change = ConfigChange(entity=entity, key=key, action=action, actor=actor, detail=detail or {})
    session.add(change)
    session.flush()
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CONFIG_CHANNEL, "payload": str(change.id)},
    )
    return int(change.id)


_Versioned = TypeVar("_Versioned", Model, Route)


def _upsert(
    session: Session, row: _Versioned | None, make: Callable[[], _Versioned], **values: Any
) -> tuple[_Versioned, bool]:
    """Insert ``make()`` when ``row`` is None, set ``values`` and stamp ``updated_at`` on an
    update; return the row (refreshed) and whether it was created."""
    created = row is None
    if row is None:
        row = make()
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    if not created:
        row.updated_at = func.now()  # type: ignore[assignment]
    session.flush()
    session.refresh(row)
    return row, created


class ModelRepository:
    """The model pool."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, model_id: str) -> Model | None:
        return self.session.get(Model, model_id)

    def select_all(self, include_disabled: bool = True) -> Select[Model]:
        statement = select(Model).order_by(Model.created_at, Model.id)
        return statement if include_disabled else statement.where(Model.enabled)

    def all(self, include_disabled: bool = True) -> Sequence[Model]:
        return self.session.scalars(self.select_all(include_disabled)).all()

    def missing(self, model_ids: Sequence[str]) -> list[str]:
        """The ids among ``model_ids`` that are not in the pool."""
        found = set(self.session.scalars(select(Model.id).where(Model.id.in_(model_ids))))
        return [m for m in model_ids if m not in found]

    def upsert(
        self,
        model_id: str,
        provider: str,
        input_usd_per_mtok: float,
        output_usd_per_mtok: float,
        enabled: bool,
    ) -> tuple[Model, bool]:
        """Create or update a model; return it and whether it was created."""
        return _upsert(
            self.session,
            self.get(model_id),
            lambda: Model(id=model_id),
            provider=provider,
            input_usd_per_mtok=input_usd_per_mtok,
            output_usd_per_mtok=output_usd_per_mtok,
            enabled=enabled,
        )


class PolicyRepository:
    """Versioned policies."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def select_all(self, name: str = "") -> Select[Policy]:
        statement = select(Policy).order_by(Policy.name, Policy.version)
        return statement.where(Policy.name == name) if name else statement

    def all(self, name: str = "") -> Sequence[Policy]:
        return self.session.scalars(self.select_all(name)).all()

    def get(self, name: str, version: int = 0) -> Policy | None:
        """Version ``version`` of ``name``; 0 = the latest."""
        statement = select(Policy).where(Policy.name == name)
        if version:
            statement = statement.where(Policy.version == version)
        return self.session.scalars(statement.order_by(Policy.version.desc()).limit(1)).first()

    def add_version(self, name: str, **fields: Any) -> Policy:
        """Insert the next version of ``name`` (serialised per name by an advisory lock)."""
        self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('banditroute.policy'), hashtext(:n))"),
            {"n": name},
        )
        latest = self.session.scalar(select(func.max(Policy.version)).where(Policy.name == name))
        policy = Policy(name=name, version=(latest or 0) + 1, **fields)
        self.session.add(policy)
        self.session.flush()
        self.session.refresh(policy)
        return policy


class RouteRepository:
    """Routes of every tenant."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, tenant: str, name: str) -> Route | None:
        return self.session.get(Route, (tenant, name))

    def select_all(self, tenant: str | None = None) -> Select[Route]:
        statement = select(Route).order_by(Route.tenant, Route.name)
        return statement if tenant is None else statement.where(Route.tenant == tenant)

    def all(self, tenant: str | None = None) -> Sequence[Route]:
        return self.session.scalars(self.select_all(tenant)).all()

    def upsert(
        self, tenant: str, name: str, policy_name: str, policy_version: int, models: list[str],
        budget: Any = None,
    ) -> tuple[Route, bool]:
        """``budget``: a ``RouteBudget`` (its four fields become the route's budget columns)
        or None (no budget)."""
        return _upsert(
            self.session,
            self.get(tenant, name),
            lambda: Route(tenant=tenant, name=name),
            policy_name=policy_name,
            policy_version=policy_version,
            models=models,
            budget_per_request_usd=getattr(budget, "budget_per_request_usd", None),
            budget_usd=getattr(budget, "budget_usd", None),
            budget_period=getattr(budget, "budget_period", None),
            budget_hard_cap=bool(getattr(budget, "budget_hard_cap", False)),
        )


class ApiKeyRepository:
    """Per-tenant API keys (hashes only)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, key_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def by_hash(self, key_hash: bytes) -> ApiKey | None:
        return self.session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()

    def all(self, tenant: str | None = None) -> Sequence[ApiKey]:
        statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
        if tenant is not None:
            statement = statement.where(ApiKey.tenant == tenant)
        return self.session.scalars(statement).all()

    def add(self, key_id: str, tenant: str, label: str, key_hash: bytes) -> ApiKey:
        key = ApiKey(key_id=key_id, tenant=tenant, label=label, key_hash=key_hash)
        self.session.add(key)
        self.session.flush()
        self.session.refresh(key)
        return key

    def revoke(self, key: ApiKey, at: datetime | None = None) -> None:
        if key.revoked_at is None:
            key.revoked_at = at or func.now()  # type: ignore[assignment]
            self.session.flush()
