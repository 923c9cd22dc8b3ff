"""A Route call and its answer in plain Python, and the bounds a call must respect.

The servicer (``banditroute.service.api.router``) copies the protobuf request into a
:class:`RouteRequest`; :class:`~banditroute.service.core.router.RouterCore` answers a
:class:`RouteResult`. :func:`validate_route_request` is the one place where a Route's fields are
checked: a violation is ``INVALID_ARGUMENT`` naming the field.

Examples
--------
>>> validate_route_request(RouteRequest(prompt="hi", max_cost_usd=-1.0), 1 << 20)
Traceback (most recent call last):
...
banditroute.service.errors.InvalidArgument: max_cost_usd must be >= 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from banditroute.service.errors import InvalidArgument

__all__ = [
    "DEFAULT_ROUTE",
    "RankedModel",
    "RouteRequest",
    "RouteResult",
    "replayed",
    "validate_route_request",
]

DEFAULT_ROUTE = "default"
_MAX_NAME = 256
_MAX_CONTEXT_ITEMS = 256


class RankedModel(NamedTuple):
    """A candidate in the ranking (a named tuple: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field, and Route builds one per fallback)."""

    model: str
    score: float
    probability: float
    estimated_cost_usd: float


@dataclass(slots=True)
class RouteResult:
    """The answer of one Route call."""

    decision_id: str
    model: str
    propensity: float
    score: float
    estimated_cost_usd: float
    fallbacks: list[RankedModel]
    policy: str
    policy_version: int
    experiment: str
    variant: str
    route: str
    replayed: bool = False
    #: "" when the policy's choice stood; "pacing" or "cap" when the route's budget moved it.
    pacing: str = ""
    #: The budget controller's cost weight (USD^-1) the decision used (0: no budget).
    pacing_cost_weight: float = 0.0


@dataclass(slots=True)
class RouteRequest:
    """A Route call, in plain Python (the servicer copies the proto into this)."""

    prompt: str
    candidates: Sequence[str] = ()
    route: str = ""
    tenant: str = ""
    unit_id: str = ""
    numeric_context: Mapping[str, float] = field(default_factory=dict)
    categorical_context: Mapping[str, str] = field(default_factory=dict)
    max_cost_usd: float | None = None
    request_id: str = ""
    #: The client has just generated ``request_id`` and sends it for the first time: no
    #: decision can be stored under it, so the new one's commit is not waited for.
    fresh_request_id: bool = False


def _check_finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
    return value


def _prompt_size_ok(prompt: str, limit: int) -> bool:
    n = len(prompt)
    if n * 4 <= limit:  # a character is at most 4 UTF-8 bytes
        return True
    if n > limit:
        return False
    return len(prompt.encode("utf-8", "surrogatepass")) <= limit


def validate_route_request(req: RouteRequest, max_prompt_bytes: int) -> None:
    """Raise ``InvalidArgument`` naming the first field of ``req`` that is out of bounds."""
    if not req.prompt:
        raise InvalidArgument("prompt must not be empty")
    if not _prompt_size_ok(req.prompt, max_prompt_bytes):
        raise InvalidArgument(
            f"prompt is larger than max_prompt_bytes ({max_prompt_bytes} bytes)"
        )
    if len(req.numeric_context) > _MAX_CONTEXT_ITEMS:
        raise InvalidArgument(f"numeric_context has more than {_MAX_CONTEXT_ITEMS} entries")
    if len(req.categorical_context) > _MAX_CONTEXT_ITEMS:
        raise InvalidArgument(f"categorical_context has more than {_MAX_CONTEXT_ITEMS} entries")
    for key, value in req.numeric_context.items():
        if not math.isfinite(value):
            raise InvalidArgument(f"numeric_context[{key[:64]!r}] must be finite")
    if req.max_cost_usd is not None:
        _check_finite("max_cost_usd", req.max_cost_usd)
        if req.max_cost_usd < 0:
            raise InvalidArgument("max_cost_usd must be >= 0")
    for name, text in (
        ("route", req.route),
        ("tenant", req.tenant),
        ("unit_id", req.unit_id),
        ("request_id", req.request_id),
    ):
        if len(text) > _MAX_NAME:
            raise InvalidArgument(f"{name} is longer than {_MAX_NAME} characters")


def replayed(result: RouteResult) -> RouteResult:
    """``result`` marked as a replay of a stored decision."""
    return result if result.replayed else replace(result, replayed=True)
