"""The experiment hook of the Route path: which policy serves a request.

The router asks an :class:`ExperimentResolver` for an :class:`Assignment` on every Route call.
The default, :class:`RoutePolicyResolver`, serves the route's own policy;
``banditroute.service.experiments`` plugs in a resolver that hashes the unit key into a bucket and
picks a variant (and shadow policies that score without serving).

Examples
--------
>>> route = RouteEntry(tenant="", name="default", policy=PolicyKey("p", 1), models=())
>>> RoutePolicyResolver().resolve("", route, "user-1")
Assignment(policy=PolicyKey(name='p', version=1), experiment='', variant='', bucket=-1, shadows=())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from banditroute.learners.base import Policy
from banditroute.service.core.route_budget import RouteBudget

__all__ = [
    "Assignment",
    "ExperimentResolver",
    "PolicyKey",
    "RouteEntry",
    "RoutePolicyResolver",
]


class PolicyKey(NamedTuple):
    """A policy version: learned state is kept per (name, version)."""

    name: str
    version: int


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """A route as the router caches it.

    ``policy`` has the version resolved (a route pinned to version 0 follows the latest
    version); ``models`` is empty when the route may use every enabled model.
    """

    tenant: str
    name: str
    policy: PolicyKey
    models: tuple[str, ...]
    experiment: str = ""
    budget: RouteBudget | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    """What serves one request.

    Parameters
    ----------
    policy
        Policy version that chooses the model.
    experiment, variant
        Experiment and variant names ("" outside experiments).
    bucket
        Hash bucket of the unit key in the experiment (-1 outside experiments).
    shadows
        Policy versions that score the request and log their choice without serving it.
    """

    policy: PolicyKey
    experiment: str = ""
    variant: str = ""
    bucket: int = -1
    shadows: tuple[PolicyKey, ...] = ()


class ExperimentResolver(Protocol):
    """Decides the :class:`Assignment` of a request; must be fast and never do I/O."""

    def resolve(self, tenant: str, route: RouteEntry, unit_key: str) -> Assignment:
        """Return the assignment of ``unit_key`` (unit id, else request id) on ``route``."""
        ...

    def score_shadows(
        self,
        assignment: Assignment,
        policy_of: Callable[[PolicyKey], Policy | None],
        x: np.ndarray,
        candidates: Iterable[str] | None,
        rng: np.random.Generator | None = None,
        group: str | None = None,
    ) -> dict[str, Any] | None:
        """What each of ``assignment.shadows`` would have chosen for ``x`` in ``group`` (stored in
        ``decisions.shadow``); ``None`` when there are none. Never raises for a shadow.

        The default scores nothing: only an experiment resolver assigns shadows."""
        return None


class RoutePolicyResolver(ExperimentResolver):
    """Default resolver: every request is served by the route's own policy (no shadows)."""

    def resolve(self, tenant: str, route: RouteEntry, unit_key: str) -> Assignment:
        """Return the route's policy, with no experiment."""
        return Assignment(policy=route.policy)
