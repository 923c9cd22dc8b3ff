"""Overload protection: an in-flight cap, request size caps, deadlines, malformed messages.

:class:`LimitsInterceptor` is the outermost server interceptor. For every RPC except health
checks and reflection it

* rejects the call at once with ``RESOURCE_EXHAUSTED`` when ``max_in_flight`` calls of this
  process are already running, instead of queueing it until its deadline passes;
* rejects it with ``DEADLINE_EXCEEDED`` when its deadline has already passed on arrival;
* refuses a request message larger than ``max_message_bytes`` (``max_prompt_bytes`` + 1 MiB
  for the other fields: :func:`request_limit_bytes`) with ``INVALID_ARGUMENT`` naming the limit,
  before parsing it: an oversized request is the client's mistake, not a retryable overload;
* turns a message that does not parse (for example invalid UTF-8 in a string field, which
  grpc's Python deserializer refuses) into ``INVALID_ARGUMENT`` instead of ``UNKNOWN``;
* refuses a message with a NUL character (U+0000) in any string, at any depth, with
  ``INVALID_ARGUMENT``: PostgreSQL cannot store NUL in text or JSONB, so such a value could
  only fail later, deep in a database write (:func:`nul_field`);
* publishes the call's deadline (:data:`banditroute.service.deadline.DEADLINE`), so the core
  can call :func:`check_deadline` before expensive work or a database wait and give up early;
* publishes the request's prompt and credentials for log redaction
  (:func:`banditroute.service.security.guard_request`).

Request size: the documented limit is :func:`request_limit_bytes`, enforced here with
``INVALID_ARGUMENT``. grpc's own cap (``grpc.max_receive_message_length``, set by
:func:`server_options`) answers ``RESOURCE_EXHAUSTED`` before any Python code runs, so it is set
well above the documented limit (:data:`TRANSPORT_MAX_BYTES`, or 4 times the limit if larger):
only a message over that hard cap still gets grpc's ``RESOURCE_EXHAUSTED``.

Examples
--------
>>> request_limit_bytes(1 << 20)
2097152
>>> dict(server_options(max_prompt_bytes=1 << 20))["grpc.max_receive_message_length"]
67108864
>>> time_remaining() is None  # outside an RPC there is no deadline
True
>>> check_deadline()  # and nothing to miss
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Gauge

from banditroute.service.deadline import DEADLINE as _DEADLINE
from banditroute.service.deadline import DeadlineExceeded, check_deadline, time_remaining
from banditroute.service.security import guard_request

__all__ = [
    "EXEMPT_PREFIXES",
    "REQUEST_OVERHEAD_BYTES",
    "TRANSPORT_MAX_BYTES",
    "DeadlineExceeded",
    "LimitsInterceptor",
    "check_deadline",
    "nul_field",
    "request_limit_bytes",
    "server_options",
    "time_remaining",
]

#: Methods never counted nor rejected: a load balancer must see an overloaded server as alive.
EXEMPT_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/", "/grpc.reflection.")

#: Bytes a request may carry beyond the largest prompt (context maps, candidate lists, batches).
REQUEST_OVERHEAD_BYTES = 1 << 20

#: grpc's hard cap on a received message (at least): above the documented limit, so that an
#: oversized request reaches :class:`LimitsInterceptor` and gets ``INVALID_ARGUMENT``.
TRANSPORT_MAX_BYTES = 64 << 20


def request_limit_bytes(
    max_prompt_bytes: int, *, overhead_bytes: int = REQUEST_OVERHEAD_BYTES
) -> int:
    """The documented size limit of one request message: the largest prompt plus
    ``overhead_bytes`` for the other fields (``INVALID_ARGUMENT`` beyond it)."""
    return max_prompt_bytes + overhead_bytes


def server_options(
    max_prompt_bytes: int, *, overhead_bytes: int = REQUEST_OVERHEAD_BYTES
) -> list[tuple[str, Any]]:
    """grpc server options: the transport's cap on one request message.

    The cap is far above :func:`request_limit_bytes` (pass that to :class:`LimitsInterceptor`
    as ``max_message_bytes``): a message between the two is refused with ``INVALID_ARGUMENT``
    naming the limit; only one over the cap is refused by grpc itself (``RESOURCE_EXHAUSTED``).
    A prompt over ``max_prompt_bytes`` in a message under the limit reaches the servicer, which
    answers ``INVALID_ARGUMENT`` naming ``max_prompt_bytes``.
    """
    limit = request_limit_bytes(max_prompt_bytes, overhead_bytes=overhead_bytes)
    return [("grpc.max_receive_message_length", max(TRANSPORT_MAX_BYTES, 4 * limit))]


_NulCheck = Callable[[Any], "str | None"]
_NUL_CHECKERS: dict[str, _NulCheck] = {}


def nul_field(message: Message) -> str | None:
    """Path of the first string (value or map key, at any depth) holding a NUL character.

    >>> from banditroute.v1 import router_pb2
    >>> nul_field(router_pb2.RouteRequest(prompt="fine", categorical_context={"k": "a\\x00b"}))
    'categorical_context'
    >>> nul_field(router_pb2.RouteRequest(prompt="fine")) is None
    True
    """
    descriptor: Any = message.DESCRIPTOR
    return _nul_checker(descriptor)(message)


def _nul_checker(descriptor: Descriptor) -> _NulCheck:
    """A checker compiled once per message type: plain attribute reads, no reflection."""
    name = descriptor.full_name
    cached = _NUL_CHECKERS.get(name)
    if cached is not None:
        return cached
    # Registered before the fields are compiled, so recursive types (Struct) terminate.
    parts: list[_NulCheck] = []

    def check(message: Any) -> str | None:
        for part in parts:
            found = part(message)
            if found is not None:
                return found
        return None

    _NUL_CHECKERS[name] = check
    parts.extend(_field_checker(field) for field in descriptor.fields)
    return check


def _field_checker(field: FieldDescriptor) -> _NulCheck:
    attr = field.name
    string = FieldDescriptor.TYPE_STRING
    if field.type == string:
        if field.is_repeated:
            return lambda m: attr if any("\x00" in v for v in getattr(m, attr)) else None
        return lambda m: attr if "\x00" in getattr(m, attr) else None
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return lambda m: None
    entry = field.message_type
    assert entry is not None
    if entry.GetOptions().map_entry:
        key_is_str = entry.fields_by_name["key"].type == string
        value_field = entry.fields_by_name["value"]
        value_is_str = value_field.type == string
        value_type = value_field.message_type
        sub = _nul_checker(value_type) if value_type is not None else None

        def check_map(m: Any) -> str | None:
            for key, value in getattr(m, attr).items():
                if (key_is_str and "\x00" in key) or (value_is_str and "\x00" in value):
                    return attr
                if sub is not None and (inner := sub(value)) is not None:
                    return f"{attr}.{inner}"
            return None

        return check_map
    sub_checker = _nul_checker(entry)
    if field.is_repeated:

        def check_list(m: Any) -> str | None:
            for item in getattr(m, attr):
                if (inner := sub_checker(item)) is not None:
                    return f"{attr}.{inner}"
            return None

        return check_list

    def check_one(m: Any) -> str | None:
        if not m.HasField(attr):
            return None
        inner = sub_checker(getattr(m, attr))
        return None if inner is None else f"{attr}.{inner}"

    return check_one


_MALFORMED_DETAILS = "request message could not be parsed (invalid UTF-8 or malformed protobuf)"


class _Malformed:
    """Stands in for a request whose bytes did not parse; the call is then refused."""

    __slots__ = ("label", "reason")

    def __init__(self, reason: str, label: str = "malformed") -> None:
        self.reason = reason
        self.label = label


def _safe_deserializer(
    deserializer: Callable[[bytes], Any] | None, max_bytes: int | None = None
) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        if max_bytes is not None and len(data) > max_bytes:
            return _Malformed(
                f"request message is {len(data)} bytes, over the limit of {max_bytes} bytes "
                "(max_prompt_bytes plus 1 MiB for the other fields); send a smaller request",
                "too_large",
            )
        try:
            message = deserializer(data)
        except (DecodeError, UnicodeDecodeError, ValueError):
            return _Malformed(_MALFORMED_DETAILS)
        # A NUL byte somewhere in the wire bytes is needed for a NUL in a string: most Route
        # calls have none and skip the walk.
        if b"\x00" in data and isinstance(message, Message):
            field = nul_field(message)
            if field is not None:
                return _Malformed(f"{field} must not contain NUL (U+0000) characters")
        return message

    return deserialize


class LimitsInterceptor(aio.ServerInterceptor):
    """Caps in-flight RPCs, enforces deadlines and refuses unparsable messages.

    Put it first in the server's interceptor list so a refusal costs as little as possible.

    Parameters
    ----------
    max_in_flight
        RPCs this process serves at once; the next one gets ``RESOURCE_EXHAUSTED``.
    exempt_prefixes
        Method-name prefixes that are neither counted nor refused.
    registry
        Prometheus registry for ``banditroute_limits_in_flight`` and
        ``banditroute_rejected_requests_total{reason}`` (a private one when None).
    max_message_bytes
        Largest request message (:func:`request_limit_bytes`); a larger one is refused with
        ``INVALID_ARGUMENT`` naming the limit. None: no limit here (the transport's only).

    Examples
    --------
    >>> limits = LimitsInterceptor(max_in_flight=2)
    >>> limits.in_flight, limits.rejected
    (0, 0)
    >>> LimitsInterceptor(max_in_flight=0)
    Traceback (most recent call last):
    ...
    ValueError: max_in_flight must be >= 1, got 0
    """

    def __init__(
        self,
        max_in_flight: int,
        *,
        exempt_prefixes: Sequence[str] = EXEMPT_PREFIXES,
        registry: CollectorRegistry | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.exempt_prefixes = tuple(exempt_prefixes)
        self.max_message_bytes = max_message_bytes
        #: RPCs currently running (the event loop is single-threaded: a plain int suffices).
        self.in_flight = 0
        #: RPCs refused for the in-flight cap since start.
        self.rejected = 0
        registry = registry if registry is not None else CollectorRegistry()
        gauge = Gauge(
            "banditroute_limits_in_flight", "RPCs being served (limits view)", registry=registry
        )
        gauge.set_function(lambda: self.in_flight)  # read at scrape time: nothing per call
        self._refused = Counter(
            "banditroute_rejected_requests",
            "RPCs refused before reaching a servicer, by reason",
            ["reason"],
            registry=registry,
        )
        self._refused_in_flight = self._refused.labels("in_flight")
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method  # type: ignore[attr-defined]
        # The wrapped handler of a method never changes: build it once, not per call.
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(self.exempt_prefixes):
            return handler
        wrapped = self._wrap_handler(handler)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap_handler(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        # A unary request is deserialized whole: the size limit and malformed checks apply.
        safe = _safe_deserializer(handler.request_deserializer, self.max_message_bytes)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary),
                request_deserializer=safe,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_unary_stream(handler.unary_stream),
                request_deserializer=safe,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_unary_stream(handler.stream_stream),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _admit(
        self, request: Any, context: aio.ServicerContext
    ) -> tuple[grpc.StatusCode, str] | None:
        """The status to abort with, or None when the call may run (then the caller must
        :meth:`_release`). Synchronous: the common path creates no coroutine."""
        if self.in_flight >= self.max_in_flight:
            self.rejected += 1
            self._refused_in_flight.inc()
            return (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server is over its in-flight cap ({self.max_in_flight}); retry with backoff",
            )
        if isinstance(request, _Malformed):
            self._refused.labels(request.label).inc()
            return grpc.StatusCode.INVALID_ARGUMENT, request.reason
        remaining = context.time_remaining()
        if remaining is not None:
            if remaining <= 0:
                self._refused.labels("deadline").inc()
                return grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded on arrival"
            _DEADLINE.set(time.monotonic() + remaining)
        guard_request(request, context.invocation_metadata())
        self.in_flight += 1
        return None

    def _release(self) -> None:
        self.in_flight -= 1

    def _wrap_unary(
        self, behavior: Callable[[Any, aio.ServicerContext], Awaitable[Any]]
    ) -> Callable[[Any, aio.ServicerContext], Awaitable[Any]]:
        async def limited(request: Any, context: aio.ServicerContext) -> Any:
            refusal = self._admit(request, context)
            if refusal is not None:
                await context.abort(*refusal)
            try:
                return await behavior(request, context)
            except DeadlineExceeded as exc:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, exc.message)
            finally:
                self._release()

        return limited

    def _wrap_unary_stream(
        self, behavior: Callable[[Any, aio.ServicerContext], AsyncIterator[Any]]
    ) -> Callable[[Any, aio.ServicerContext], AsyncIterator[Any]]:
        async def limited(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            refusal = self._admit(request, context)
            if refusal is not None:
                await context.abort(*refusal)
            try:
                async for response in behavior(request, context):
                    yield response
            except DeadlineExceeded as exc:
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, exc.message)
            finally:
                self._release()

        return limited
