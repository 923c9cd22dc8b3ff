"""The one gRPC interceptor of banditroute: request ids, auth, in-flight cap, error mapping.

Every banditroute RPC (``/banditroute.v1.*``) runs inside :class:`ServiceInterceptor`, which

1. sets the request-id context variable (from the ``x-request-id`` header or a fresh id),
2. authenticates: Admin calls need ``authorization: Bearer <admin token>``; Router calls need
   ``x-api-key: <key>`` when API keys are required (the key decides the tenant, published in
   :data:`tenant_var`),
3. maps domain errors (:mod:`banditroute.service.errors`) to their status code, and anything else to
   ``INTERNAL`` with a generic message quoting the request id, logging the traceback.

This is the only place where domain errors become status codes. Health and reflection calls
pass through untouched. The in-flight cap, deadlines and unparsable messages are handled before
this, by :class:`banditroute.service.api.limits.LimitsInterceptor` (the outermost interceptor).

Examples
--------
>>> import grpc
>>> STATUS_OF_CODE["NOT_FOUND"] == grpc.StatusCode.NOT_FOUND
True
>>> parse_bearer("Bearer s3cret"), parse_bearer("Basic abc")
('s3cret', None)
"""

from __future__ import annotations

import contextvars
import hmac
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import grpc.aio

from banditroute.service.errors import BanditrouteError, PermissionDenied, Unauthenticated

__all__ = [
    "ADMIN_PREFIX",
    "ROUTER_PREFIX",
    "STATUS_OF_CODE",
    "ApiKeyResolver",
    "Authenticator",
    "Principal",
    "RpcObserver",
    "ServiceInterceptor",
    "check_tenant",
    "current_tenant",
    "parse_bearer",
    "request_id_var",
    "tenant_var",
]

log = logging.getLogger(__name__)

ROUTER_PREFIX = "/banditroute.v1.Router/"
ADMIN_PREFIX = "/banditroute.v1.Admin/"
_OWN_PREFIX = "/banditroute.v1."

#: Request id of the RPC being served ("" outside an RPC); quoted in logs and INTERNAL errors.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "banditroute_request_id", default=""
)
#: Tenant bound by the caller's API key, or None when API keys are not required.
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "banditroute_tenant", default=None
)

STATUS_OF_CODE: dict[str, grpc.StatusCode] = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ALREADY_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
    "PERMISSION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
}


def parse_bearer(value: str) -> str | None:
    """Return the token of an ``authorization: Bearer <token>`` header value, else None."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_tenant() -> str | None:
    """Tenant bound to the current call by its API key (None when keys are not required)."""
    return tenant_var.get()


def check_tenant(requested: str) -> str:
    """Return the tenant a Router call acts for, enforcing the API key's tenant.

    With API keys required, ``requested`` must be empty or equal to the key's tenant
    (``PERMISSION_DENIED`` otherwise); without keys the requested tenant is used as given.

    >>> check_tenant("acme")
    'acme'
    """
    bound = tenant_var.get()
    if bound is None:
        return requested
    if requested and requested != bound:
        raise PermissionDenied("the API key does not belong to this tenant")
    return bound


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``admin`` for a valid admin token, else the API key's tenant."""

    admin: bool = False
    tenant: str | None = None


class ApiKeyResolver(Protocol):
    """Looks up the tenant of a raw API key (None for an unknown or revoked key)."""

    def tenant_for_key(self, raw_key: str) -> str | None:
        """Return the tenant owning ``raw_key``; must compare secrets in constant time."""
        ...


class Authenticator:
    """Checks admin tokens and API keys.

    Parameters
    ----------
    admin_token
        Expected admin bearer token; None leaves Admin RPCs open (development only).
    require_api_keys
        Require ``x-api-key`` on Router RPCs.
    api_keys
        Resolves an API key to its tenant.

    Examples
    --------
    >>> auth = Authenticator(admin_token="t0k")
    >>> auth.check_admin((("authorization", "Bearer t0k"),))
    Principal(admin=True, tenant=None)
    >>> auth.check_admin((("authorization", "Bearer nope"),))
    Traceback (most recent call last):
    ...
    banditroute.service.errors.Unauthenticated: invalid admin token
    """

    def __init__(
        self,
        admin_token: str | None = None,
        require_api_keys: bool = False,
        api_keys: ApiKeyResolver | None = None,
    ) -> None:
        self._admin_token = admin_token.encode() if admin_token else None
        self.require_api_keys = require_api_keys
        self._api_keys = api_keys

    def check_admin(self, metadata: Sequence[tuple[str, Any]]) -> Principal:
        """Validate the bearer token of an Admin call."""
        if self._admin_token is None:
            return Principal(admin=True)
        header = _header(metadata, "authorization")
        if header is None:
            raise Unauthenticated("missing admin token: send 'authorization: Bearer <token>'")
        token = parse_bearer(header)
        if token is None or not hmac.compare_digest(token.encode(), self._admin_token):
            raise Unauthenticated("invalid admin token")
        return Principal(admin=True)

    def check_router(self, metadata: Sequence[tuple[str, Any]]) -> Principal:
        """Resolve the API key of a Router call to its tenant (when keys are required)."""
        if not self.require_api_keys:
            return Principal()
        key = _header(metadata, "x-api-key")
        if not key:
            raise Unauthenticated("missing API key: send 'x-api-key: <key>'")
        tenant = self._api_keys.tenant_for_key(key) if self._api_keys is not None else None
        if tenant is None:
            raise Unauthenticated("invalid or revoked API key")
        return Principal(tenant=tenant)


def _header(metadata: Sequence[tuple[str, Any]] | None, name: str) -> str | None:
    for key, value in metadata or ():
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


_RID_PREFIX = uuid.uuid4().hex[:12]
_rid_counter = itertools.count(1)


def _next_request_id() -> str:
    """A request id unique across processes: a random per-process prefix and a counter."""
    return f"{_RID_PREFIX}-{next(_rid_counter):x}"


class RpcObserver(Protocol):
    """Receives one observation per finished RPC (metrics)."""

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record that ``method`` finished with ``code`` after ``seconds``."""
        ...


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary banditroute RPC; see the module docstring for what it does.

    Parameters
    ----------
    authenticator
        Checks credentials; Admin and Router methods are told apart by their path.
    observer
        Optional metrics sink called once per RPC with the method, status code and duration.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        observer: RpcObserver | None = None,
    ) -> None:
        self._auth = authenticator
        self._observer = observer
        self._cache: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or not method.startswith(_OWN_PREFIX) or handler.unary_unary is None:
            return handler
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._cache[method] = wrapped
        return wrapped

    def _wrap(self, method: str, behavior: Behavior) -> Behavior:
        admin = method.startswith(ADMIN_PREFIX)
        auth = self._auth
        check = auth.check_admin if admin else auth.check_router
        needs_metadata = admin or auth.require_api_keys
        observer = self._observer
        short = method.rsplit("/", 1)[-1]

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            metadata = context.invocation_metadata() or ()
            rid = _header(metadata, "x-request-id") or _next_request_id()
            rid_token = request_id_var.set(rid)
            tenant_token = None
            try:
                if needs_metadata:
                    principal = check(metadata)
                    tenant_token = tenant_var.set(principal.tenant)
                return await behavior(request, context)
            except BanditrouteError as exc:
                code = exc.code
                status = STATUS_OF_CODE.get(exc.code, grpc.StatusCode.UNKNOWN)
                await context.abort(status, exc.message)
            except grpc.aio.AbortError:
                if code == "OK":
                    code = "ABORTED_BY_HANDLER"
                raise
            except Exception:
                code = "INTERNAL"
                log.exception("unhandled error in %s (request id %s)", short, rid)
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")
            finally:
                if tenant_token is not None:
                    tenant_var.reset(tenant_token)
                request_id_var.reset(rid_token)
                if observer is not None:
                    observer.observe_rpc(short, code, time.perf_counter() - started)

        return wrapper
