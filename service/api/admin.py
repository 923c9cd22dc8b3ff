"""The Admin servicer: proto in, :mod:`banditroute.service.core.admin` call (in a worker thread),
proto out.

Every change is recorded as a config change (NOTIFY ``banditroute_config``); this process then
catches up at once, so a Route right after PutRoute on the same process sees the new route,
and every other process within one poll interval. Experiment RPCs are delegated to an
:class:`banditroute.service.api.experiments.ExperimentRpcs`. Errors are mapped by the
interceptor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import grpc.aio
from google.protobuf import json_format, struct_pb2
from sqlalchemy import Engine

from banditroute.service.api.experiments import ExperimentRpcs
from banditroute.service.core import admin as core
from banditroute.service.core import api_keys
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.follower import EventFollower
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.errors import InvalidArgument, NotFound
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.resolver import active_experiments
from banditroute.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["AdminServicer"]

T = TypeVar("T")


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def _hyperparameters(msg: struct_pb2.Struct) -> dict[str, Any]:
    # Struct numbers are doubles; core.admin.put_policy gives integral values their int type
    values: dict[str, Any] = json_format.MessageToDict(msg)
    return values


def _model(m: core.ModelInfo) -> admin_pb2.Model:
    return admin_pb2.Model(
        id=m.id,
        provider=m.provider,
        input_usd_per_mtok=m.input_usd_per_mtok,
        output_usd_per_mtok=m.output_usd_per_mtok,
        enabled=m.enabled,
    )


def _policy(p: core.PolicyInfo) -> admin_pb2.Policy:
    msg = admin_pb2.Policy(
        name=p.name,
        version=p.version,
        algorithm=p.algorithm,
        hyperparameters=_struct(dict(p.hyperparameters)),
        reward=admin_pb2.RewardWeights(
            cost_weight=p.cost_weight,
            latency_weight=p.latency_weight,
            feedback_weight=p.feedback_weight,
        ),
        seed=p.seed,
    )
    if p.created_at is not None:
        msg.created_at.FromDatetime(p.created_at)
    return msg


def _route_config(r: core.RouteInfo, active: dict[tuple[str, str], str]) -> admin_pb2.RouteConfig:
    return admin_pb2.RouteConfig(
        tenant=r.tenant,
        name=r.name,
        policy=r.policy,
        policy_version=r.policy_version,
        models=list(r.models),
        experiment=active.get((r.tenant, r.name), ""),
        budget_per_request_usd=r.budget_per_request_usd,
        budget_usd=r.budget_usd,
        budget_period=r.budget_period or "",
        budget_hard_cap=r.budget_hard_cap,
    )


def _route_budget(r: Any) -> RouteBudget:
    """The budget fields of a ``RouteConfig`` (checked by ``core.put_route``)."""
    return RouteBudget(
        budget_per_request_usd=(r.budget_per_request_usd
                                if r.HasField("budget_per_request_usd") else None),
        budget_usd=r.budget_usd if r.HasField("budget_usd") else None,
        budget_period=r.budget_period or None,
        budget_hard_cap=r.budget_hard_cap,
    )


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """Implements ``banditroute.v1.Admin``.

    Parameters
    ----------
    engine
        Database engine for the admin transactions.
    follower
        This process's event follower (caught up after each change).
    registry
        This process's live policies (for ``GetPolicyState``).
    """

    def __init__(
        self, *, engine: Engine, follower: EventFollower, registry: PolicyRegistry
    ) -> None:
        self.engine = engine
        self.follower = follower
        self.registry = registry
        self.experiments = ExperimentManager(engine)
        self._experiment_rpcs = ExperimentRpcs(self.experiments, self._run)

    async def _tx(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def work() -> T:
            with core.transaction(self.engine) as session:
                return fn(session, *args, **kwargs)

        return await asyncio.to_thread(work)

    async def _changed(self) -> None:
        """Apply the change to this process now (others follow via NOTIFY/polling)."""
        await self.follower.catch_up()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` in a worker thread, then this process catches up (an experiment change must
        reach this process's resolver at once)."""
        result = await asyncio.to_thread(fn, *args, **kwargs)
        await self._changed()
        return result

    # -- models --------------------------------------------------------------------------
    async def PutModel(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        m = request.model
        info = await self._tx(
            core.put_model,
            m.id,
            provider=m.provider,
            input_usd_per_mtok=m.input_usd_per_mtok,
            output_usd_per_mtok=m.output_usd_per_mtok,
            enabled=m.enabled,
            actor="admin",
        )
        await self._changed()
        return _model(info)

    async def ListModels(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        rows = await self._tx(core.list_models, request.include_disabled)
        return admin_pb2.ListModelsResponse(models=[_model(m) for m in rows])

    # -- policies ------------------------------------------------------------------------
    async def PutPolicy(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        reward = request.reward
        info = await self._tx(
            core.put_policy,
            request.name,
            request.algorithm,
            hyperparameters=_hyperparameters(request.hyperparameters),
            cost_weight=reward.cost_weight,
            latency_weight=reward.latency_weight,
            feedback_weight=(reward.feedback_weight if reward.HasField("feedback_weight") else 0.5),
            seed=int(request.seed),
            actor="admin",
        )
        await self._changed()
        return _policy(info)

    async def ListPolicies(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        rows = await self._tx(core.list_policies, request.name)
        return admin_pb2.ListPoliciesResponse(policies=[_policy(p) for p in rows])

    async def GetPolicyState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto: the learned state of this process (after catching up)."""
        if request.version < 0:
            raise InvalidArgument("version must be >= 0 (0 = latest)")
        info = await self._tx(core.get_policy, request.name, int(request.version))
        await self.follower.catch_up()
        live = self.registry.get(PolicyKey(info.name, info.version))
        if live is None:
            raise NotFound(f"policy {info.name!r} version {info.version} is not loaded")
        summary = live.policy.summary()
        arms = [
            admin_pb2.ArmState(
                model=model,
                updates=int(s["updates"]),
                mean_reward=float(s["mean_reward"] or 0.0),
            )
            for model, s in summary.items()
        ]
        return admin_pb2.PolicyState(
            policy=_policy(info),
            last_event_id=int(live.last_event_id),
            updates=sum(a.updates for a in arms),
            arms=arms,
            groups=live.policy.groups,
            group_prior=live.policy.group_prior,
        )

    # -- routes --------------------------------------------------------------------------
    async def PutRoute(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        r = request.route
        info = await self._tx(
            core.put_route,
            r.name,
            r.policy,
            tenant=r.tenant,
            policy_version=int(r.policy_version),
            models=list(r.models),
            budget=_route_budget(r),
            actor="admin",
        )
        await self._changed()
        return _route_config(info, await self._active_experiments())

    async def ListRoutes(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto ("" tenant lists every tenant's routes)."""
        rows = await self._tx(core.list_routes, request.tenant or None)
        active = await self._active_experiments()
        return admin_pb2.ListRoutesResponse(routes=[_route_config(r, active) for r in rows])

    async def _active_experiments(self) -> dict[tuple[str, str], str]:
        def work() -> dict[tuple[str, str], str]:
            with self.engine.connect() as conn:
                return active_experiments(conn)

        return await asyncio.to_thread(work)

    # -- API keys ------------------------------------------------------------------------
    async def CreateApiKey(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        created = await self._tx(api_keys.create_api_key, request.tenant, request.label, "admin")
        await self._changed()
        return admin_pb2.CreateApiKeyResponse(
            key_id=created.key_id, key=created.key, tenant=created.tenant
        )

    async def RevokeApiKey(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        await self._tx(api_keys.revoke_api_key, request.key_id, "admin")
        await self._changed()
        return admin_pb2.RevokeApiKeyResponse()

    # -- experiments (see banditroute.service.api.experiments) -----------------------------
    async def CreateExperiment(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.create(request, context)

    async def RampExperiment(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.ramp(request, context)

    async def SetExperimentState(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.set_state(request, context)

    async def PromoteVariant(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.promote(request, context)

    async def RollbackExperiment(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.rollback(request, context)

    async def GetExperimentStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.status(request, context)

    async def ListExperiments(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See admin.proto."""
        return await self._experiment_rpcs.list_experiments(request, context)
