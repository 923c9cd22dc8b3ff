"""Register servicers with their interceptors applied once, at start-up, not on every call.

grpc.aio runs a server's ``interceptors`` on every RPC: each one is a coroutine that must
complete before the call's handler is even known, and on the Route hot path the two of
banditroute cost about a tenth of a Route (``benchmarks/load.py``). Both are *static*: the
handler they return depends on the method name only, never on the call. So
:func:`add_intercepted` asks them once per method when the servicer is registered, and registers
the wrapped handlers; a call then goes straight to its (wrapped) handler, and the server is
created without ``interceptors``.

Only the hot service's methods should be *registered methods* (``registered=True``; grpc
matches them in its core): grpc.aio keeps one pending request task per registered method, and
waits on all of them (``asyncio.wait``) once for every RPC it serves. With the Admin service's
methods registered too that was 25 tasks per wait; with 6, Route runs 7 % fewer instructions
(``benchmarks/instructions.py``). Rarely called services go through the generic handler (one
task for them all): ``registered=False`` here, :class:`GenericOnly` for a generated
``add_*Servicer_to_server``.

Examples
--------
>>> import asyncio, grpc
>>> from banditroute.v1 import router_pb2_grpc
>>> class Tagging(grpc.aio.ServerInterceptor):  # a static interceptor: by method name only
...     async def intercept_service(self, continuation, details):
...         handler = await continuation(details)
...         print("wrapping", details.method)
...         return handler
>>> async def main():
...     server = grpc.aio.server()
...     await add_intercepted(server, router_pb2_grpc.add_RouterServicer_to_server,
...                           router_pb2_grpc.RouterServicer(), [Tagging()])
>>> asyncio.run(main())  # doctest: +ELLIPSIS
wrapping /banditroute.v1.Router/Route
...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

__all__ = ["GenericOnly", "add_intercepted"]


@dataclass(frozen=True)
class _Details(grpc.HandlerCallDetails):
    method: str
    invocation_metadata: tuple[tuple[str, Any], ...] = ()


class _Capture:
    """Stands in for the server in a generated ``add_*Servicer_to_server`` call."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        """Ignored: the registered method handlers below describe the same methods."""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.services[service] = dict(handlers)


class GenericOnly:
    """Stands in for ``server`` in a generated ``add_*Servicer_to_server`` call, so that the
    service is served through a generic handler only (no registered methods).

    >>> class Server:  # prints what reaches it
    ...     def add_generic_rpc_handlers(self, handlers): print("generic", len(handlers))
    ...     def add_registered_method_handlers(self, service, handlers): print("registered")
    >>> from grpc_health.v1 import health, health_pb2_grpc
    >>> health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), GenericOnly(Server()))
    generic 1
    """

    def __init__(self, server: Any) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Ignored: the generic handlers describe the same methods."""


async def _intercept(
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    method: str,
    handler: grpc.RpcMethodHandler,
) -> grpc.RpcMethodHandler:
    """``handler`` as the interceptor chain (first = outermost) hands it to grpc for ``method``."""

    async def chain(index: int, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        if index == len(interceptors):
            return handler

        def continuation(d: grpc.HandlerCallDetails) -> Awaitable[grpc.RpcMethodHandler]:
            return chain(index + 1, d)

        result: grpc.RpcMethodHandler = await interceptors[index].intercept_service(
            continuation, details
        )
        return result

    return await chain(0, _Details(method))


async def add_intercepted(
    server: grpc.aio.Server,
    add_servicer: Callable[[Any, Any], None],
    servicer: Any,
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    *,
    registered: bool = True,
) -> None:
    """Register ``servicer`` (with the generated ``add_servicer``) behind ``interceptors``;
    its methods as registered methods too when ``registered`` (for the hot service only).

    Each interceptor must be static: what it returns for a method may depend on the method
    name only (it runs once per method, with empty invocation metadata).
    """
    capture = _Capture()
    add_servicer(servicer, capture)
    for service, handlers in capture.services.items():
        wrapped = {
            name: await _intercept(interceptors, f"/{service}/{name}", handler)
            for name, handler in handlers.items()
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        if registered:
            server.add_registered_method_handlers(service, wrapped)
