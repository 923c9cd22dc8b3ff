"""In-memory copy of the configuration (models, policies, routes, API keys) of one process.

Route never reads the database: it reads a :class:`ConfigSnapshot`, replaced as a whole when
the config version (the largest ``config_changes.id``) grows. The follower checks the version on
every NOTIFY on ``banditroute_config`` and on every poll, so a change made through Admin by any
process reaches every process within one poll interval.

Examples
--------
>>> m = ModelEntry("a", "openai", 0.15, 0.6, True)
>>> round(m.cost_usd(1000, 500), 6)
0.00045
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from banditroute.learners.reward import RewardWeights
from banditroute.service.core.api_keys import hash_api_key
from banditroute.service.core.assignment import PolicyKey, RouteEntry
from banditroute.service.core.policies import PolicySpec
from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.storage.models import ApiKey, ConfigChange, Model, Policy, Route

__all__ = ["ConfigSnapshot", "ModelEntry", "config_version", "load_config"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A model of the pool with its prices (USD per one million tokens)."""

    id: str
    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    enabled: bool
    created_at: datetime | None = None

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """Cost of one call with these token counts."""
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6


@dataclass(slots=True)
class ConfigSnapshot:
    """Everything Route needs from the configuration, at one config version."""

    version: int = 0
    #: Models in pool order (creation time, then id); the order policies get their arms in.
    models: dict[str, ModelEntry] = field(default_factory=dict)
    #: Every policy version.
    policies: dict[PolicyKey, PolicySpec] = field(default_factory=dict)
    latest_version: dict[str, int] = field(default_factory=dict)
    #: Routes by (tenant, name); ``policy`` resolved to a concrete version.
    routes: dict[tuple[str, str], RouteEntry] = field(default_factory=dict)
    #: sha256(key) -> (key id, tenant) of every key not revoked.
    api_keys: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    enabled_models: tuple[str, ...] = ()

    @property
    def arms(self) -> list[str]:
        """Every model of the pool, in pool order."""
        return list(self.models)

    def initial_arms(self, spec: PolicySpec) -> list[str]:
        """The arms a policy version starts with: a function of stored rows only.

        The models created no later than the policy version (pool order), plus a ``fixed``
        policy's model; the pool's first model when that leaves none. Models added later become
        arms at their first outcome or rating in the log (see
        :mod:`banditroute.service.core.policies`), so every process, and a rebuild from the log,
        grows the arms at the same point.
        """
        arms = [
            m.id
            for m in self.models.values()
            if spec.created_at is None or m.created_at is None or m.created_at <= spec.created_at
        ]
        fixed = spec.hyperparameters.get("model")
        if isinstance(fixed, str) and fixed in self.models and fixed not in arms:
            arms.append(fixed)
        if not arms and self.models:
            arms = [next(iter(self.models))]
        return arms

    def route(self, tenant: str, name: str) -> RouteEntry | None:
        """The tenant's route ``name``, else the shared (tenant "") route of that name."""
        entry = self.routes.get((tenant, name))
        if entry is None and tenant:
            entry = self.routes.get(("", name))
        return entry

    def tenant_for_key(self, raw_key: str) -> str | None:
        """Tenant of an API key that is not revoked (None otherwise).

        Keys are looked up by their SHA-256 digest, which a caller cannot steer byte by byte,
        so the lookup's timing reveals nothing about stored keys; the hit is then confirmed
        with a constant-time comparison.
        """
        digest = hash_api_key(raw_key)
        for stored, (_key_id, tenant) in self._key_candidates(digest):
            if hmac.compare_digest(stored, digest):
                return tenant
        return None

    def _key_candidates(self, digest: bytes) -> list[tuple[bytes, tuple[str, str]]]:
        hit = self.api_keys.get(digest)
        return [] if hit is None else [(digest, hit)]


def config_version(conn: Connection) -> int:
    """The current config version: the largest ``config_changes.id`` (0 when none)."""
    return int(conn.execute(select(func.coalesce(func.max(ConfigChange.id), 0))).scalar_one())


def _weights(row: Any) -> RewardWeights:
    return RewardWeights(
        cost_weight=float(row.cost_weight),
        latency_weight=float(row.latency_weight),
        feedback_weight=float(row.feedback_weight),
    )


def load_config(conn: Connection) -> ConfigSnapshot:
    """Read the whole configuration in one transaction."""
    snap = ConfigSnapshot(version=config_version(conn))
    models = Model.__table__
    for row in conn.execute(select(models).order_by(models.c.created_at, models.c.id)):
        snap.models[row.id] = ModelEntry(
            row.id,
            row.provider,
            float(row.input_usd_per_mtok),
            float(row.output_usd_per_mtok),
            bool(row.enabled),
            row.created_at,
        )
    snap.enabled_models = tuple(k for k, v in snap.models.items() if v.enabled)
    policies = Policy.__table__
    for row in conn.execute(select(policies).order_by(policies.c.name, policies.c.version)):
        spec = PolicySpec(
            name=row.name,
            version=int(row.version),
            algorithm=row.algorithm,
            hyperparameters=dict(row.hyperparameters or {}),
            weights=_weights(row),
            seed=int(row.seed),
            created_at=row.created_at,
        )
        snap.policies[spec.key] = spec
        snap.latest_version[row.name] = max(snap.latest_version.get(row.name, 0), spec.version)
    for row in conn.execute(select(Route.__table__)):
        version = int(row.policy_version) or snap.latest_version.get(row.policy_name, 0)
        snap.routes[(row.tenant, row.name)] = RouteEntry(
            tenant=row.tenant,
            name=row.name,
            policy=PolicyKey(row.policy_name, version),
            models=tuple(row.models or ()),
            budget=RouteBudget.of(row),
        )
    keys = conn.execute(
        select(ApiKey.key_hash, ApiKey.key_id, ApiKey.tenant).where(ApiKey.revoked_at.is_(None))
    )
    for key_hash, key_id, tenant in keys:
        snap.api_keys[bytes(key_hash)] = (key_id, tenant)
    return snap
