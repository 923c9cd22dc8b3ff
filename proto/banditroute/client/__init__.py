"""Python client of the banditroute service: route, call the model, fall back, record.

A plain ``pip install banditroute`` gives this package and the stubs (``banditroute.v1``) with
grpcio and protobuf only; the server is the ``server`` extra.

>>> from banditroute.client import Router
>>> with Router(address) as router:
...     result = router.call("Translate 'bonjour'.", lambda model: f"{model}: hello")
>>> result.model in result.value
True

The whole loop, with a fake LLM, failures and quality signals: ``docs/integration.md``.
"""

from banditroute.client.aio import AsyncRouter
from banditroute.client.calls import AllModelsFailed, Attempt, CallResult
from banditroute.client.connection import Connection, connection
from banditroute.client.retry import NO_RETRY, RetryPolicy
from banditroute.client.sync import Router

__all__ = [
    "NO_RETRY",
    "AllModelsFailed",
    "AsyncRouter",
    "Attempt",
    "CallResult",
    "Connection",
    "RetryPolicy",
    "Router",
    "connection",
]
