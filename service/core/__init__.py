"""Application core: routing, the outcome/feedback join, and the policy registry that learns by
following the event log. Servicers (``service.api``) call into it; it never sees protobufs."""

from service.core.assignment import (
    Assignment,
    ExperimentResolver,
    PolicyKey,
    RouteEntry,
    RoutePolicyResolver,
)
from service.core.config_cache import ConfigSnapshot, ModelEntry
from service.core.follower import EventFollower, rebuild_policy
from service.core.outcomes import FeedbackInput, OutcomeCore, OutcomeInput
from service.core.policies import PolicyRegistry, PolicySpec
from service.core.router import RouterCore, RouteRequest, RouteResult
from service.core.store import SqlStore

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
