"""The Router servicer: proto in, core call, proto out (errors are mapped by the interceptor)."""

from __future__ import annotations

from typing import Any

import grpc.aio

from banditroute.service.api.interceptors import check_tenant, current_tenant
from banditroute.service.core.outcomes import (
    FeedbackInput,
    OutcomeCore,
    OutcomeInput,
    OutcomeResult,
)
from banditroute.service.core.route_request import RouteRequest
from banditroute.service.core.router import RouterCore
from banditroute.v1 import router_pb2, router_pb2_grpc

__all__ = ["RouterServicer"]

_CODE_NUMBER = {
    "OK": 0,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}


def _outcome_input(msg: Any) -> OutcomeInput:
    return OutcomeInput(
        decision_id=msg.decision_id,
        quality=msg.quality if msg.HasField("quality") else None,
        success=msg.success if msg.HasField("success") else None,
        input_tokens=msg.input_tokens if msg.HasField("input_tokens") else None,
        output_tokens=msg.output_tokens if msg.HasField("output_tokens") else None,
        cost_usd=msg.cost_usd if msg.HasField("cost_usd") else None,
        latency_ms=msg.latency_ms if msg.HasField("latency_ms") else None,
        error=msg.error,
    )


def _outcome_result(r: OutcomeResult) -> Any:
    return router_pb2.OutcomeResult(
        decision_id=r.decision_id,
        code=_CODE_NUMBER.get(r.code, 2),
        message=r.message,
        reward=r.reward,
        event_id=r.event_id,
        duplicate=r.duplicate,
    )


class RouterServicer(router_pb2_grpc.RouterServicer):
    """Implements ``banditroute.v1.Router`` on the routing and outcome cores."""

    def __init__(self, router: RouterCore, outcomes: OutcomeCore) -> None:
        self.router = router
        self.outcomes = outcomes

    async def Route(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See router.proto."""
        result = await self.router.route(
            RouteRequest(
                prompt=request.prompt,
                candidates=request.candidates,
                route=request.route,
                tenant=check_tenant(request.tenant),
                unit_id=request.unit_id,
                numeric_context=request.numeric_context,
                categorical_context=request.categorical_context,
                max_cost_usd=request.max_cost_usd if request.HasField("max_cost_usd") else None,
                request_id=request.request_id,
                fresh_request_id=request.fresh_request_id,
            )
        )
        return router_pb2.RouteResponse(
            decision_id=result.decision_id,
            model=result.model,
            propensity=result.propensity,
            # dicts, not RankedModel messages: the constructor builds each one in place
            # instead of copying a message built first (5 us less per Route with 10 models)
            fallbacks=[
                {
                    "model": f.model,
                    "score": f.score,
                    "probability": f.probability,
                    "estimated_cost_usd": f.estimated_cost_usd,
                }
                for f in result.fallbacks
            ],
            score=result.score,
            estimated_cost_usd=result.estimated_cost_usd,
            policy=result.policy,
            policy_version=result.policy_version,
            experiment=result.experiment,
            variant=result.variant,
            replayed=result.replayed,
            route=result.route,
            pacing=result.pacing,
            pacing_cost_weight=result.pacing_cost_weight,
        )

    async def RecordOutcome(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See router.proto."""
        r = await self.outcomes.record_outcome(_outcome_input(request), current_tenant())
        return router_pb2.RecordOutcomeResponse(
            reward=r.reward, event_id=r.event_id, duplicate=r.duplicate
        )

    async def RecordOutcomes(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See router.proto."""
        results = await self.outcomes.record_outcomes(
            [_outcome_input(m) for m in request.outcomes], current_tenant()
        )
        accepted = sum(1 for r in results if r.code == "OK")
        return router_pb2.RecordOutcomesResponse(
            results=[_outcome_result(r) for r in results],
            accepted=accepted,
            rejected=len(results) - accepted,
        )

    async def SubmitFeedback(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """See router.proto."""
        r = await self.outcomes.submit_feedback(
            FeedbackInput(
                decision_id=request.decision_id,
                rating=request.rating,
                comment=request.comment if request.HasField("comment") else None,
                source=request.source,
                feedback_id=request.feedback_id,
            ),
            current_tenant(),
        )
        return router_pb2.SubmitFeedbackResponse(
            reward=r.reward, event_id=r.event_id, duplicate=r.duplicate
        )
