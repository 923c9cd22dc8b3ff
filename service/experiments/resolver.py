"""The experiment-aware :class:`~banditroute.service.core.assignment.ExperimentResolver` of the
Route path.

:class:`ExperimentCache` holds every *running* experiment compiled for lookup: per route, the
salt and the bucket ranges with a ready :class:`~banditroute.service.core.assignment.Assignment`
template for each. ``resolve`` hashes the unit key (BLAKE2b,
:func:`~banditroute.service.experiments.assignment.bucket_of`) and bisects the ranges: no database
access, a few microseconds. Experiments in draft, paused or stopped, and routes without an
experiment, are served by the route's own policy (the fallback resolver). The Route path also
asks the resolver for the shadow policies' scores (:meth:`ExperimentCache.score_shadows`, see
:mod:`banditroute.service.experiments.shadow`).

The cache is replaced as a whole by :meth:`ExperimentCache.reload` (one read of the
``experiments`` and ``experiment_variants`` tables), which the config follower calls whenever
the config version grows: every experiment change writes a ``config_changes`` row and NOTIFYs
``banditroute_config`` (see :mod:`banditroute.service.experiments.manager`), so all processes and
replicas switch together within one poll interval.

Examples
--------
>>> from banditroute.service.core.assignment import PolicyKey, RouteEntry
>>> from banditroute.service.experiments.assignment import initial_allocation
>>> cache = ExperimentCache()
>>> cache.load([CompiledExperiment.build(
...     name="e1", tenant="", route="default", salt="e1",
...     allocation=initial_allocation({"control": 50, "treatment": 50}),
...     policies={"control": PolicyKey("lin", 1), "treatment": PolicyKey("ts", 1)},
...     shadows=(PolicyKey("eg", 2),))])
>>> route = RouteEntry(tenant="", name="default", policy=PolicyKey("lin", 1), models=())
>>> a = cache.resolve("", route, "user-42")
>>> a.experiment, a.variant in ("control", "treatment"), a.shadows
('e1', True, (PolicyKey(name='eg', version=2),))
>>> cache.resolve("", route, "user-42") == a
True
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from banditroute.service.core.assignment import (
    Assignment,
    ExperimentResolver,
    PolicyKey,
    RouteEntry,
    RoutePolicyResolver,
)
from banditroute.service.experiments.assignment import BUCKETS, Allocation, bucket_of
from banditroute.service.experiments.shadow import score_shadows
from banditroute.service.storage.models.experiment import Experiment
from banditroute.service.storage.models.experiment_variant import ExperimentVariant

__all__ = ["CompiledExperiment", "ExperimentCache", "active_experiments", "load_running"]


@dataclass(frozen=True, slots=True)
class CompiledExperiment:
    """A running experiment ready for lookup: range starts and one assignment per range."""

    name: str
    tenant: str
    route: str
    salt: str
    starts: tuple[int, ...]
    templates: tuple[Assignment, ...]

    @classmethod
    def build(
        cls,
        *,
        name: str,
        tenant: str,
        route: str,
        salt: str,
        allocation: Allocation,
        policies: Mapping[str, PolicyKey],
        shadows: tuple[PolicyKey, ...] = (),
    ) -> CompiledExperiment:
        """Compile from the allocation and each served variant's policy version."""
        starts, templates = [], []
        for start, _end, variant in allocation.ranges:
            starts.append(start)
            templates.append(
                Assignment(
                    policy=policies[variant],
                    experiment=name,
                    variant=variant,
                    shadows=tuple(k for k in shadows if k != policies[variant]),
                )
            )
        return cls(name, tenant, route, salt, tuple(starts), tuple(templates))

    def assign(self, unit_key: str) -> Assignment:
        """The assignment of ``unit_key`` (an empty key gets a random, non-sticky bucket)."""
        bucket = bucket_of(self.salt, unit_key) if unit_key else random.randrange(BUCKETS)
        t = self.templates[bisect.bisect_right(self.starts, bucket) - 1]
        return Assignment(t.policy, t.experiment, t.variant, bucket, t.shadows)

    @property
    def policy_keys(self) -> set[PolicyKey]:
        """Every policy version this experiment serves or shadows."""
        return {t.policy for t in self.templates} | {k for t in self.templates for k in t.shadows}


def load_running(conn: Connection) -> list[CompiledExperiment]:
    """Read and compile every running experiment (one transaction on ``conn``)."""
    exp_t, var_t = Experiment.__table__, ExperimentVariant.__table__
    exps = list(conn.execute(select(exp_t).where(exp_t.c.state == "running")))
    if not exps:
        return []
    variants: dict[int, list[Any]] = {}
    rows = conn.execute(
        select(var_t)
        .where(var_t.c.experiment_id.in_([e.id for e in exps]))
        .order_by(var_t.c.experiment_id, var_t.c.position)
    )
    for v in rows:
        variants.setdefault(v.experiment_id, []).append(v)
    out = []
    for e in exps:
        vs = variants.get(e.id, [])
        out.append(
            CompiledExperiment.build(
                name=e.name,
                tenant=e.tenant,
                route=e.route,
                salt=e.salt,
                allocation=Allocation.from_json(e.allocation),
                policies={
                    v.name: PolicyKey(v.policy_name, v.policy_version) for v in vs if not v.shadow
                },
                shadows=tuple(
                    PolicyKey(v.policy_name, v.policy_version)
                    for v in vs
                    if v.shadow and not v.stopped
                ),
            )
        )
    return out


def active_experiments(conn: Connection) -> dict[tuple[str, str], str]:
    """Name of the running or paused experiment of each ``(tenant, route)`` that has one
    (for ``RouteConfig.experiment``)."""
    t = Experiment.__table__
    rows = conn.execute(
        select(t.c.tenant, t.c.route, t.c.name).where(t.c.state.in_(("running", "paused")))
    )
    return {(tenant, route): name for tenant, route, name in rows}


class ExperimentCache:
    """:class:`~banditroute.service.core.assignment.ExperimentResolver` serving running experiments.

    Parameters
    ----------
    fallback
        Resolver for routes without a running experiment (default: the route's own policy).
    """

    def __init__(self, fallback: ExperimentResolver | None = None) -> None:
        self._fallback = fallback or RoutePolicyResolver()
        self._by_route: dict[tuple[str, str], CompiledExperiment] = {}

    def load(self, experiments: Iterable[CompiledExperiment]) -> None:
        """Replace the running experiments (atomic: one dict swap)."""
        self._by_route = {(e.tenant, e.route): e for e in experiments}

    def reload(self, conn: Connection) -> None:
        """Re-read the running experiments; call whenever the config version grows."""
        self.load(load_running(conn))

    def resolve(self, tenant: str, route: RouteEntry, unit_key: str) -> Assignment:
        """Assignment of ``unit_key`` on ``route``: a variant of its running experiment, else
        the fallback's (no I/O)."""
        exp = self._by_route.get((route.tenant, route.name))
        if exp is None:
            return self._fallback.resolve(tenant, route, unit_key)
        return exp.assign(unit_key)

    #: The shadow policies' choices for a request
    #: (:func:`~banditroute.service.experiments.shadow.score_shadows`).
    score_shadows = staticmethod(score_shadows)

    def experiment_of(self, tenant: str, route: str) -> str:
        """Name of the running experiment of a route ("" if none)."""
        exp = self._by_route.get((tenant, route))
        return exp.name if exp else ""

    def policy_keys(self) -> set[PolicyKey]:
        """Policy versions the registry must keep live for running experiments."""
        out: set[PolicyKey] = set()
        for e in self._by_route.values():
            out |= e.policy_keys
        return out
