"""Experiment RPCs of the Admin service: proto in, :class:`ExperimentManager` call, proto out.

:class:`ExperimentRpcs` holds the handlers of ``CreateExperiment``, ``RampExperiment``,
``SetExperimentState``, ``PromoteVariant``, ``RollbackExperiment``, ``GetExperimentStatus`` and
``ListExperiments``; the Admin servicer (:mod:`banditroute.service.api.admin`) owns one and
delegates those RPCs to it. The manager is synchronous: every call goes through the ``run``
the servicer passes in, which runs it in a worker thread (so the event loop keeps serving Route)
and then applies the change to this process. Domain errors (``InvalidArgument``, ``NotFound``,
...) propagate to the interceptor, which maps them to status codes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from banditroute.learners.evaluation import Estimate
from banditroute.learners.sequential import Difference, Interval
from banditroute.service.errors import InvalidArgument
from banditroute.service.experiments.assignment import VariantSpec
from banditroute.service.experiments.guardrails import GuardrailConfig
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.service.experiments.stats import experiment_status
from banditroute.service.experiments.views import ExperimentStatusView, ExperimentView
from banditroute.v1 import admin_pb2

__all__ = [
    "STATE_NAMES",
    "ExperimentRpcs",
    "Runner",
    "experiment_to_proto",
    "status_to_proto",
]

#: Runs a synchronous manager call off the event loop (and applies the change here).
Runner = Callable[..., Awaitable[Any]]

#: Proto enum value -> stored state name.
STATE_NAMES: dict[int, str] = {
    admin_pb2.EXPERIMENT_STATE_DRAFT: "draft",
    admin_pb2.EXPERIMENT_STATE_RUNNING: "running",
    admin_pb2.EXPERIMENT_STATE_PAUSED: "paused",
    admin_pb2.EXPERIMENT_STATE_STOPPED: "stopped",
}
_STATE_VALUES = {v: k for k, v in STATE_NAMES.items()}
#: Fields of the ``Variant`` message, named as in ``VariantSpec`` and ``VariantView``.
_VARIANT_FIELDS = tuple(admin_pb2.Variant.DESCRIPTOR.fields_by_name)


def experiment_to_proto(view: ExperimentView) -> admin_pb2.Experiment:
    """The ``Experiment`` message of a stored experiment."""
    msg = admin_pb2.Experiment(
        name=view.name,
        tenant=view.tenant,
        route=view.route,
        state=_STATE_VALUES.get(view.state, admin_pb2.EXPERIMENT_STATE_UNSPECIFIED),  # type: ignore[arg-type]
        variants=[
            admin_pb2.Variant(**{f: getattr(v, f) for f in _VARIANT_FIELDS}) for v in view.variants
        ],
        salt=view.salt,
        guardrail=admin_pb2.Guardrail(**view.guardrail.to_json()),
        stop_reason=view.stop_reason,
    )
    if view.created_at is not None:
        ts = Timestamp()
        ts.FromDatetime(view.created_at)
        msg.created_at.CopyFrom(ts)
    return msg


def _estimate(x: Interval | Difference | Estimate | None) -> admin_pb2.Estimate:
    nan = math.nan
    if x is None:
        return admin_pb2.Estimate(value=nan, ci_low=nan, ci_high=nan, n=0)
    if isinstance(x, Interval):
        return admin_pb2.Estimate(value=x.estimate, ci_low=x.low, ci_high=x.high, n=x.n)
    if isinstance(x, Difference):
        return admin_pb2.Estimate(
            value=x.estimate, ci_low=x.low, ci_high=x.high, n=min(x.n_a, x.n_b)
        )
    return admin_pb2.Estimate(value=x.value, ci_low=x.ci_low, ci_high=x.ci_high, n=x.n)


def status_to_proto(status: ExperimentStatusView) -> admin_pb2.ExperimentStatus:
    """The ``ExperimentStatus`` message (NaN marks numbers that are not defined yet)."""
    msg = admin_pb2.ExperimentStatus(
        experiment=experiment_to_proto(status.experiment),
        method=status.method,
        variants=[
            admin_pb2.VariantStatus(
                variant=s.variant.name,
                shadow=s.variant.shadow,
                control=s.variant.control,
                stopped=s.variant.stopped,
                stop_reason=s.variant.stop_reason,
                decisions=s.decisions,
                outcomes=s.outcomes,
                reward=_estimate(s.reward),
                quality=_estimate(s.quality),
                cost_usd=_estimate(s.cost_usd),
                latency_p50_ms=s.latency_p50_ms,
                latency_p95_ms=s.latency_p95_ms,
                reward_diff_vs_control=_estimate(s.reward_diff_vs_control),
                p_value=(
                    s.reward_diff_vs_control.p_value
                    if s.reward_diff_vs_control is not None
                    else math.nan
                ),
                ips=_estimate(s.ips),
                snips=_estimate(s.snips),
                dr=_estimate(s.dr),
                spend_usd=s.spend_usd,
                spend_per_request_usd=s.spend_per_request_usd,
                period_spend_usd=s.period_spend_usd,
                budget_share=s.budget_share,
            )
            for s in status.variants
        ],
    )
    budget = status.budget
    if budget is not None:
        if budget.budget_per_request_usd is not None:
            msg.budget_per_request_usd = budget.budget_per_request_usd
        if budget.budget_usd is not None:
            msg.budget_usd = budget.budget_usd
        msg.budget_period = budget.period or ""
        if budget.period_start is not None:
            msg.period_start.FromDatetime(budget.period_start)
    return msg


def _variants(msgs: Sequence[admin_pb2.Variant]) -> list[VariantSpec]:
    return [VariantSpec(**{f: getattr(m, f) for f in _VARIANT_FIELDS}) for m in msgs]


def _guardrail(msg: admin_pb2.Guardrail) -> GuardrailConfig:
    if msg.min_samples < 0:
        raise InvalidArgument(f"guardrail.min_samples must be >= 0, got {msg.min_samples}")
    return GuardrailConfig.from_json(
        {
            "max_reward_drop": msg.max_reward_drop,
            "max_cost_increase": msg.max_cost_increase,
            "confidence": msg.confidence,
            "min_samples": msg.min_samples,
        }
    )


def _actor(actor: str, context: Any) -> str:
    if actor:
        return actor[:200]
    peer = context.peer() if context is not None and hasattr(context, "peer") else ""
    return f"admin@{peer}" if peer else "admin"


class ExperimentRpcs:
    """Handlers of the experiment RPCs, composed into the Admin servicer.

    Parameters
    ----------
    manager
        The experiments' manager.
    run
        ``await run(fn, *args, **kwargs)``: calls the synchronous ``fn`` in a worker thread and
        applies the change to this process before returning its result.
    """

    def __init__(self, manager: ExperimentManager, run: Runner) -> None:
        self.manager = manager
        self._run = run

    async def create(
        self, request: admin_pb2.CreateExperimentRequest, context: Any
    ) -> admin_pb2.Experiment:
        """Create (and optionally start) an experiment."""
        view = await self._run(
            self.manager.create,
            request.name,
            request.tenant,
            request.route or "default",
            _variants(request.variants),
            _guardrail(request.guardrail),
            salt=request.salt,
            start=request.start,
            actor=_actor(request.actor, context),
        )
        return experiment_to_proto(view)

    async def ramp(
        self, request: admin_pb2.RampExperimentRequest, context: Any
    ) -> admin_pb2.Experiment:
        """Change variant weights, moving only the units that must move."""
        view = await self._run(
            self.manager.ramp,
            request.name,
            dict(request.weights),
            actor=_actor(request.actor, context),
        )
        return experiment_to_proto(view)

    async def set_state(
        self, request: admin_pb2.SetExperimentStateRequest, context: Any
    ) -> admin_pb2.Experiment:
        """Start, pause, resume or stop."""
        state = STATE_NAMES.get(request.state)
        if state is None:
            raise InvalidArgument("state must be DRAFT, RUNNING, PAUSED or STOPPED")
        view = await self._run(
            self.manager.set_state,
            request.name,
            state,
            actor=_actor(request.actor, context),
            reason=request.reason,
        )
        return experiment_to_proto(view)

    async def promote(
        self, request: admin_pb2.PromoteVariantRequest, context: Any
    ) -> admin_pb2.Experiment:
        """Make a variant's policy version the route's policy (warm) and stop."""
        view = await self._run(
            self.manager.promote,
            request.name,
            request.variant,
            actor=_actor(request.actor, context),
        )
        return experiment_to_proto(view)

    async def rollback(
        self, request: admin_pb2.RollbackExperimentRequest, context: Any
    ) -> admin_pb2.Experiment:
        """Stop and restore the route's pre-experiment policy."""
        view = await self._run(
            self.manager.rollback,
            request.name,
            actor=_actor(request.actor, context),
            reason=request.reason,
        )
        return experiment_to_proto(view)

    async def status(
        self, request: admin_pb2.GetExperimentStatusRequest, context: Any
    ) -> admin_pb2.ExperimentStatus:
        """Evaluate guardrails, then return live per-variant statistics."""

        def work() -> ExperimentStatusView:
            self.manager.check_guardrails(request.name)
            return experiment_status(self.manager.engine, self.manager.get(request.name))

        return status_to_proto(await self._run(work))

    async def list_experiments(
        self, request: admin_pb2.ListExperimentsRequest, context: Any
    ) -> admin_pb2.ListExperimentsResponse:
        """Experiments, newest first, filtered by tenant and/or route when given."""
        views = await self._run(
            self.manager.list_experiments,
            tenant=request.tenant or None,
            route=request.route,
        )
        return admin_pb2.ListExperimentsResponse(
            experiments=[experiment_to_proto(v) for v in views]
        )
