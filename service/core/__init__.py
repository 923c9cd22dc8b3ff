"""Application core: routing, the outcome/feedback join, and the policy registry that learns by
following the event log. Servicers (``banditroute.service.api``) call into it; it never sees
protobufs."""

from banditroute.service.core.assignment import (
    Assignment,
    ExperimentResolver,
    PolicyKey,
    RouteEntry,
    RoutePolicyResolver,
)
from banditroute.service.core.config_cache import ConfigSnapshot, ModelEntry
from banditroute.service.core.follower import EventFollower, rebuild_policy
from banditroute.service.core.outcomes import FeedbackInput, OutcomeCore, OutcomeInput
from banditroute.service.core.policies import PolicyRegistry, PolicySpec
from banditroute.service.core.route_request import RouteRequest, RouteResult
from banditroute.service.core.router import RouterCore
from banditroute.service.core.store import SqlStore

__all__ = [
    "Assignment",
    "ConfigSnapshot",
    "EventFollower",
    "ExperimentResolver",
    "FeedbackInput",
    "ModelEntry",
    "OutcomeCore",
    "OutcomeInput",
    "PolicyKey",
    "PolicyRegistry",
    "PolicySpec",
    "RouteEntry",
    "RoutePolicyResolver",
    "RouteRequest",
    "RouteResult",
    "RouterCore",
    "SqlStore",
    "rebuild_policy",
]
