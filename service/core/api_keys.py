"""API keys: issued once, stored only as their SHA-256, revocable.

A caller authenticates a Router RPC with the ``x-api-key`` header; the servers look the key
up in their in-memory config (:meth:`ConfigSnapshot.tenant_for_key
<banditroute.service.core.config_cache.ConfigSnapshot.tenant_for_key>`), by the same
:func:`hash_api_key`. Each function works inside the caller's ``Session`` transaction
(:func:`banditroute.service.core.admin.transaction`) and records a config change.

Examples
--------
>>> hash_api_key("br_x").hex()[:12]
'dbfea6c1e8b6'
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from banditroute.service.core.validation import check_label, check_tenant
from banditroute.service.errors import InvalidArgument, NotFound, Unauthenticated
from banditroute.service.storage.models import ApiKey
from banditroute.service.storage.models.base import RowResult
from banditroute.service.storage.repositories import ApiKeyRepository, record_change

__all__ = [
    "ApiKeyInfo",
    "CreatedApiKey",
    "authenticate_api_key",
    "create_api_key",
    "hash_api_key",
    "list_api_keys",
    "revoke_api_key",
]


@dataclass(frozen=True)
class ApiKeyInfo(RowResult[ApiKey]):
    """A key as listed: never its secret."""

    key_id: str
    tenant: str
    label: str
    created_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key: ``key`` is shown this once; only its SHA-256 is stored."""

    key_id: str
    key: str = field(repr=False)
    tenant: str = ""


def hash_api_key(key: str) -> bytes:
    """SHA-256 of a raw key, the only form stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def create_api_key(
    session: Session, tenant: str, label: str = "", actor: str = ""
) -> CreatedApiKey:
    """Issue a key for ``tenant``; the raw key is returned once and never stored."""
    check_tenant(tenant)
    check_label("label", label)
    key_id = "key_" + secrets.token_hex(8)
    raw = "br_" + secrets.token_urlsafe(32)
    ApiKeyRepository(session).add(key_id, tenant, label, hash_api_key(raw))
    record_change(session, "api_key", key_id, "create", {"tenant": tenant, "label": label}, actor)
    return CreatedApiKey(key_id=key_id, key=raw, tenant=tenant)


def revoke_api_key(session: Session, key_id: str, actor: str = "") -> ApiKeyInfo:
    """Revoke a key (idempotent); NotFound for an unknown id."""
    if not isinstance(key_id, str) or not key_id or len(key_id) > 64:
        raise InvalidArgument("key_id is required")
    repo = ApiKeyRepository(session)
    key = repo.get(key_id)
    if key is None:
        raise NotFound(f"API key {key_id!r} not found")
    if key.revoked_at is None:
        repo.revoke(key)
        session.refresh(key)
        record_change(session, "api_key", key_id, "revoke", {"tenant": key.tenant}, actor)
    return ApiKeyInfo.of(key)


def list_api_keys(session: Session, tenant: str | None = None) -> list[ApiKeyInfo]:
    """Keys (without secrets) of ``tenant`` or of everyone."""
    return [ApiKeyInfo.of(k) for k in ApiKeyRepository(session).all(tenant)]


def authenticate_api_key(session: Session, key: str) -> str:
    """Return the tenant of a valid, unrevoked key; Unauthenticated otherwise."""
    if not isinstance(key, str) or not key or len(key) > 256:
        raise Unauthenticated("missing or malformed API key")
    found = ApiKeyRepository(session).by_hash(hash_api_key(key))
    if found is None or found.revoked_at is not None:
        raise Unauthenticated("unknown or revoked API key")
    return found.tenant
