"""Administration: the model pool, versioned policies and routes.

API keys: :mod:`banditroute.service.core.api_keys`; the demo pool:
:mod:`banditroute.service.core.demo`.

Each function validates its input (raising :mod:`banditroute.service.errors`), works inside the
caller's ``Session`` transaction and records a config change (``NOTIFY banditroute_config``) so
every process reloads. :func:`transaction` opens such a session and maps a database outage to
``Unavailable``. Results are plain frozen dataclasses, safe to pass between threads.

Examples
--------
>>> validate_name("route", "default")
'default'
>>> validate_name("route", "bad name")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
banditroute.service.errors.InvalidArgument: route 'bad name' must be 1-200 characters of ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from banditroute.service.core.route_budget import RouteBudget, check_budget
from banditroute.service.core.validation import (
    check_hyperparameters,
    check_label,
    check_number,
    check_tenant,
    json_value,
    validate_name,
)
from banditroute.service.errors import (
    BanditrouteError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from banditroute.service.storage.models import Model, Policy, Route
from banditroute.service.storage.models.base import RowResult, row_view
from banditroute.service.storage.repositories import (
    ModelRepository,
    PolicyRepository,
    RouteRepository,
    record_change,
)

__all__ = [
    "ModelInfo",
    "PolicyInfo",
    "RouteInfo",
    "get_policy",
    "list_models",
    "list_policies",
    "list_routes",
    "put_model",
    "put_policy",
    "put_route",
    "transaction",
    "validate_name",
]

_MAX_SEED = 2**63 - 1

# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo(RowResult[Model]):
    id: str
    provider: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    enabled: bool


@dataclass(frozen=True)
class PolicyInfo(RowResult[Policy]):
    name: str
    version: int
    algorithm: str
    hyperparameters: dict[str, Any]
    cost_weight: float
    latency_weight: float
    feedback_weight: float
    seed: int
    created_at: datetime | None = None

    @classmethod
    def of(cls, p: Policy) -> Self:
        return row_view(cls, p, hyperparameters=dict(p.hyperparameters or {}))


@dataclass(frozen=True)
class RouteInfo(RowResult[Route]):
    tenant: str
    name: str
    policy: str
    policy_version: int
    models: list[str] = field(default_factory=list)
    budget_per_request_usd: float | None = None
    budget_usd: float | None = None
    budget_period: str | None = None
    budget_hard_cap: bool = False

    @classmethod
    def of(cls, r: Route) -> Self:
        return row_view(cls, r, policy=r.policy_name, models=list(r.models or []))

    @property
    def budget(self) -> RouteBudget | None:
        """The route's budget (None when it has none)."""
        return RouteBudget.of(self)


# -- sessions ---------------------------------------------------------------------------------


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session in one transaction, committed on success.

    Raises
    ------
    Unavailable
        When the database cannot be reached (nothing was changed).
    """
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except BanditrouteError:
        raise
    except OperationalError as exc:
        raise Unavailable(f"the database is unreachable: {type(exc.orig).__name__}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("the database connection was lost") from exc
        raise


# -- models ---------------------------------------------------------------------------------


def put_model(
    session: Session,
    model_id: str,
    *,
    provider: str = "",
    input_usd_per_mtok: float = 0.0,
    output_usd_per_mtok: float = 0.0,
    enabled: bool = True,
    actor: str = "",
) -> ModelInfo:
    """Create or update a model of the pool (idempotent)."""
    validate_name("model id", model_id)
    provider = check_label("provider", provider)
    price_in = check_number("input_usd_per_mtok", input_usd_per_mtok, 0.0, 1e6)
    price_out = check_number("output_usd_per_mtok", output_usd_per_mtok, 0.0, 1e6)
    model, created = ModelRepository(session).upsert(
        model_id, provider, price_in, price_out, bool(enabled)
    )
    info = ModelInfo.of(model)
    record_change(
        session, "model", model_id, "create" if created else "update", _asdict(info), actor
    )
    return info


def list_models(session: Session, include_disabled: bool = False) -> list[ModelInfo]:
    """The pool in creation order."""
    return [ModelInfo.of(m) for m in ModelRepository(session).all(include_disabled)]


# -- policies -------------------------------------------------------------------------------


def put_policy(
    session: Session,
    name: str,
    algorithm: str,
    *,
    hyperparameters: Mapping[str, Any] | None = None,
    cost_weight: float = 0.0,
    latency_weight: float = 0.0,
    feedback_weight: float = 0.5,
    seed: int = 0,
    actor: str = "",
) -> PolicyInfo:
    """Create the next version of policy ``name`` (version 1 if new); not idempotent."""
    validate_name("policy name", name)
    if not isinstance(algorithm, str) or not algorithm:
        raise InvalidArgument("algorithm is required")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise InvalidArgument(f"seed must be an integer in [0, 2^63 - 1], got {seed!r}")
    hp = json_value("hyperparameters", dict(hyperparameters or {}))
    weights = {
        "cost_weight": check_number("reward.cost_weight", cost_weight, 0.0, 1e9),
        "latency_weight": check_number("reward.latency_weight", latency_weight, 0.0, 1e9),
        "feedback_weight": check_number("reward.feedback_weight", feedback_weight, 0.0, 1.0),
    }
    check_hyperparameters(algorithm, hp, seed)
    policy = PolicyRepository(session).add_version(
        name, algorithm=algorithm, hyperparameters=hp, seed=seed, **weights
    )
    info = PolicyInfo.of(policy)
    detail = {"version": info.version, "algorithm": algorithm, "hyperparameters": hp, **weights}
    record_change(session, "policy", name, "create_version", detail, actor)
    return info


def list_policies(session: Session, name: str = "") -> list[PolicyInfo]:
    """Every version of every policy (or of ``name``), by name and version."""
    return [PolicyInfo.of(p) for p in PolicyRepository(session).all(name)]


def get_policy(session: Session, name: str, version: int = 0) -> PolicyInfo:
    """Version ``version`` (0 = latest) of policy ``name``; NotFound otherwise."""
    # policies.version is an INTEGER column: a larger number cannot exist (and would make the
    # query fail with an out-of-range error instead of answering NOT_FOUND).
    policy = PolicyRepository(session).get(name, version) if version <= 2**31 - 1 else None
    if policy is None:
        what = f"policy {name!r}" + (f" version {version}" if version else "")
        raise NotFound(f"{what} not found")
    return PolicyInfo.of(policy)


# -- routes ---------------------------------------------------------------------------------


def put_route(
    session: Session,
    name: str,
    policy: str,
    *,
    tenant: str = "",
    policy_version: int = 0,
    models: Sequence[str] = (),
    budget: RouteBudget | None = None,
    actor: str = "",
) -> RouteInfo:
    """Create or update a route; its policy (and pinned version) and models must exist.

    ``budget`` (checked with :func:`~banditroute.service.core.budgets.check_budget`) replaces
    the route's budget; None removes it."""
    validate_name("route", name)
    budget = check_budget(budget)
    check_tenant(tenant)
    validate_name("policy name", policy)
    if isinstance(policy_version, bool) or not isinstance(policy_version, int):
        raise InvalidArgument("policy_version must be an integer")
    if policy_version < 0:
        raise InvalidArgument(f"policy_version must be >= 0 (0 = latest), got {policy_version}")
    model_list = [validate_name("model id", m) for m in models]
    if len(set(model_list)) != len(model_list):
        raise InvalidArgument("models lists a model more than once")
    get_policy(session, policy, policy_version)
    missing = ModelRepository(session).missing(model_list)
    if missing:
        raise NotFound(f"unknown models: {', '.join(missing)}")
    route, created = RouteRepository(session).upsert(
        tenant, name, policy, policy_version, model_list, budget
    )
    info = RouteInfo.of(route)
    action = "create" if created else "update"
    record_change(session, "route", f"{tenant}/{name}", action, _asdict(info), actor)
    return info


def list_routes(session: Session, tenant: str | None = None) -> list[RouteInfo]:
    """Routes of ``tenant`` (None = every tenant)."""
    if tenant is not None:
        check_tenant(tenant)
    return [RouteInfo.of(r) for r in RouteRepository(session).all(tenant)]


def _asdict(info: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(info).items() if not isinstance(v, datetime)}
