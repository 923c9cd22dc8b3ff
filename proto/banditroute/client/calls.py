"""Requests, and the bookkeeping of ``call``: attempts along the ranking, the outcome recorded.

Shared by the sync and asyncio clients; nothing here does I/O.

The outcome of a decision is about the model the policy chose, because that is what the policy
learns from. ``call`` therefore records:

* the chosen model answered: ``success=True``, its ``latency_ms``, ``quality`` when a
  ``quality`` callable scored the answer, and the fields ``usage`` returns (tokens, cost);
* the chosen model raised: ``success=False``, its ``latency_ms``, and ``error`` listing every
  failed attempt in order, ``"<model>: <exception type>: <message>"`` joined by ``"; "``, then
  ``"; answered by <model>"`` when a fallback answered (at most 4,096 characters). A fallback's
  answer is not scored: it is not what the policy chose.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from banditroute.v1 import router_pb2

__all__ = [
    "AllModelsFailed",
    "Attempt",
    "CallResult",
    "DecisionRef",
    "Fallback",
    "decision_id_of",
    "feedback_request",
    "record_request",
    "retry_request",
    "route_request",
]

T = TypeVar("T")

#: The server's limit on the outcome's error text.
MAX_ERROR_CHARS = 4096


class _HasDecisionId(Protocol):
    @property
    def decision_id(self) -> str: ...


#: What ``record`` and ``feedback`` accept: a decision id, or what carries one (the
#: ``RouteResponse`` of ``route``, the ``CallResult`` of ``call``).
DecisionRef = str | _HasDecisionId


def decision_id_of(decision: DecisionRef) -> str:
    """The id of ``decision``: a ``str`` as it is, else its ``decision_id``.

    >>> decision_id_of("d-1"), decision_id_of(router_pb2.RouteResponse(decision_id="d-2"))
    ('d-1', 'd-2')
    >>> decision_id_of(42)
    Traceback (most recent call last):
    ...
    TypeError: decision_id: expected a decision id (str), a RouteResponse or a CallResult, got int
    """
    if isinstance(decision, str):
        return decision
    value = getattr(decision, "decision_id", None)
    if isinstance(value, str):
        return value
    raise TypeError(
        "decision_id: expected a decision id (str), a RouteResponse or a CallResult, "
        f"got {type(decision).__name__}"
    )


def _message(cls: Any, values: Mapping[str, Any]) -> Any:
    """``cls(**values)``, with errors that name the field (protobuf's do not always).

    >>> _message(router_pb2.RecordOutcomeRequest, {"quality": "high"})
    Traceback (most recent call last):
    ...
    TypeError: quality: must be real number, not str
    >>> _message(router_pb2.RecordOutcomeRequest, {"qualty": 0.8})
    Traceback (most recent call last):
    ...
    TypeError: RecordOutcomeRequest has no field 'qualty'
    """
    try:
        return cls(**values)
    except (TypeError, ValueError):
        fields = cls.DESCRIPTOR.fields_by_name
        for name, value in values.items():
            if name not in fields:
                raise TypeError(f"{cls.DESCRIPTOR.name} has no field {name!r}") from None
            try:
                cls(**{name: value})
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{name}: {exc}") from None
        raise


def route_request(prompt: str, fields: Mapping[str, Any]) -> Any:
    """A ``RouteRequest``; fields left None are unset, and an empty ``request_id`` gets a new
    one so that retries of this call are answered with the same decision. A new id is sent
    as ``fresh_request_id`` (the server need not look a decision up under it, and answers
    before its decision commits); :func:`retry_request` clears that for the retries.

    >>> r = route_request("hi", {"route": "default", "max_cost_usd": None})
    >>> r.prompt, r.route, r.HasField("max_cost_usd"), len(r.request_id), r.fresh_request_id
    ('hi', 'default', False, 32, True)
    >>> r = route_request("hi", {"request_id": "req-1"})
    >>> r.request_id, r.fresh_request_id
    ('req-1', False)
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt: expected str, got {type(prompt).__name__}")
    values = {k: v for k, v in fields.items() if v is not None}
    if not values.get("request_id"):
        values["request_id"] = uuid.uuid4().hex
        values.setdefault("fresh_request_id", True)
    return _message(router_pb2.RouteRequest, {"prompt": prompt, **values})


def retry_request(request: Any) -> Any:
    """``request`` as sent again after a failed attempt: a Route's request id is no longer
    fresh (the first attempt may have stored a decision under it, which the retry must get).

    >>> first = route_request("hi", {})
    >>> again = retry_request(first)
    >>> again.request_id == first.request_id, again.fresh_request_id, first.fresh_request_id
    (True, False, True)
    >>> retry_request(record_request("d-1", {})) is not None
    True
    """
    if not getattr(request, "fresh_request_id", False):
        return request
    again = type(request)()
    again.CopyFrom(request)
    again.fresh_request_id = False
    return again


def record_request(decision: DecisionRef, fields: Mapping[str, Any]) -> Any:
    """A ``RecordOutcomeRequest``; fields left None are unset.

    >>> record_request("d-1", {"success": True, "quality": None}).HasField("quality")
    False
    """
    values = {k: v for k, v in fields.items() if v is not None}
    return _message(
        router_pb2.RecordOutcomeRequest, {"decision_id": decision_id_of(decision), **values}
    )


def feedback_request(
    decision: DecisionRef, rating: float, comment: str | None, source: str, feedback_id: str
) -> Any:
    """A ``SubmitFeedbackRequest``."""
    return _message(
        router_pb2.SubmitFeedbackRequest,
        {
            "decision_id": decision_id_of(decision),
            "rating": rating,
            "comment": comment,
            "source": source,
            "feedback_id": feedback_id,
        },
    )


@dataclass(frozen=True)
class Attempt:
    """One call of ``fn(model)``: how long it took, and the error it raised ("" if none)."""

    model: str
    latency_ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        """True when the model answered."""
        return not self.error


@dataclass(frozen=True)
class CallResult(Generic[T]):
    """What ``call`` returns: the answer, the model that gave it, and how it got there."""

    #: What ``fn`` returned.
    value: T
    #: The model that answered: the chosen one, or the fallback that answered.
    model: str
    decision_id: str
    #: Every call of ``fn`` in order; the last one answered.
    attempts: tuple[Attempt, ...]
    #: The ``RouteResponse``.
    decision: Any = field(repr=False)
    #: The ``RecordOutcomeResponse`` (its ``reward``), or None when recording failed (logged).
    outcome: Any = field(default=None, repr=False)

    @property
    def fell_back(self) -> bool:
        """True when a fallback answered instead of the chosen model."""
        return len(self.attempts) > 1


class AllModelsFailed(Exception):
    """Every model of the ranking raised; the outcome (an error) was recorded.

    The last model's exception is the ``__cause__``.
    """

    def __init__(self, decision_id: str, attempts: tuple[Attempt, ...], outcome: Any) -> None:
        self.decision_id = decision_id
        self.attempts = attempts
        self.outcome = outcome
        tried = ", ".join(a.model for a in attempts)
        super().__init__(f"every model failed for decision {decision_id} (tried {tried})")


def describe(error: BaseException) -> str:
    """``"<type>: <message>"`` of an exception.

    >>> describe(TimeoutError("upstream took 30 s"))
    'TimeoutError: upstream took 30 s'
    """
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def check_quality(value: float) -> float:
    """``value`` as a float if it is a quality in [0, 1]; otherwise ValueError."""
    quality = float(value)
    if not (math.isfinite(quality) and 0.0 <= quality <= 1.0):
        raise ValueError(f"quality must be a number in [0, 1], got {value!r}")
    return quality


class Fallback:
    """The attempts of one ``call``: which model to try next and what to record.

    >>> decision = router_pb2.RouteResponse(
    ...     decision_id="d-1", model="big",
    ...     fallbacks=[router_pb2.RankedModel(model="small")])
    >>> tries = Fallback(decision)
    >>> for model in tries.models():
    ...     started = time.perf_counter()
    ...     if model == "big":
    ...         tries.failed(model, started, TimeoutError("slow"))
    ...     else:
    ...         tries.answered(model, started)
    >>> [(a.model, a.ok) for a in tries.attempts]
    [('big', False), ('small', True)]
    >>> request = tries.outcome_request()
    >>> request.success, request.error
    (False, 'big: TimeoutError: slow; answered by small')
    """

    def __init__(self, decision: Any) -> None:
        self.decision = decision
        self.attempts: list[Attempt] = []
        self._done = False

    def models(self) -> Iterator[str]:
        """The chosen model, then the fallbacks best first, until one answers."""
        for model in (self.decision.model, *(f.model for f in self.decision.fallbacks)):
            if self._done:
                return
            yield model

    def failed(self, model: str, started: float, error: BaseException) -> None:
        """``fn(model)``, begun at ``time.perf_counter()`` value ``started``, raised ``error``."""
        self.attempts.append(Attempt(model, _elapsed_ms(started), describe(error)))

    def answered(self, model: str, started: float) -> None:
        """``fn(model)``, begun at ``started``, returned."""
        self.attempts.append(Attempt(model, _elapsed_ms(started)))
        self._done = True

    @property
    def chosen_answered(self) -> bool:
        """True when the chosen model itself answered."""
        return bool(self.attempts) and self.attempts[0].ok

    def outcome_request(
        self, quality: float | None = None, usage: Mapping[str, Any] | None = None
    ) -> Any:
        """The ``RecordOutcomeRequest`` for the decision (see the module docstring)."""
        first = self.attempts[0]
        if first.ok:
            fields = {**(usage or {}), "quality": quality}
            return record_request(
                self.decision.decision_id,
                {**fields, "success": True, "latency_ms": first.latency_ms},
            )
        parts = [f"{a.model}: {a.error}" for a in self.attempts if not a.ok]
        if self.attempts[-1].ok:
            parts.append(f"answered by {self.attempts[-1].model}")
        error = "; ".join(parts)
        if len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 3] + "..."
        return record_request(
            self.decision.decision_id,
            {"success": False, "error": error, "latency_ms": first.latency_ms},
        )

    def result(self, value: T, outcome: Any) -> CallResult[T]:
        """The :class:`CallResult` of an answered call."""
        return CallResult(
            value=value,
            model=self.attempts[-1].model,
            decision_id=self.decision.decision_id,
            attempts=tuple(self.attempts),
            decision=self.decision,
            outcome=outcome,
        )

    def failure(self, outcome: Any) -> AllModelsFailed:
        """The exception to raise when every model failed."""
        return AllModelsFailed(self.decision.decision_id, tuple(self.attempts), outcome)


def check_scorers(quality: object, usage: object) -> None:
    """Raise ``TypeError`` now, before Route, when ``call``'s ``quality`` or ``usage`` is not a
    function of the answer (else the model would be called and its outcome never recorded).

    >>> check_scorers(lambda answer: 1.0, None)
    >>> check_scorers(1.0, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: quality must be a function of the answer returning [0, 1], got float; ...
    """
    for name, scorer, returns in (("quality", quality, "returning [0, 1]"),
                                  ("usage", usage, "returning its token counts or cost")):
        if scorer is not None and not callable(scorer):
            raise TypeError(f"{name} must be a function of the answer {returns}, got "
                            f"{type(scorer).__name__}; to report a fixed {name}, route and "
                            "record() yourself")


def score(
    value: T,
    quality: Callable[[T], float] | None,
    usage: Callable[[T], Mapping[str, Any]] | None,
) -> tuple[float | None, Mapping[str, Any] | None]:
    """Quality (checked to lie in [0, 1]) and usage fields of the chosen model's answer."""
    return (
        None if quality is None else check_quality(quality(value)),
        None if usage is None else usage(value),
    )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
