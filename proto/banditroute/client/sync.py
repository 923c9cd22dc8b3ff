"""The blocking client: :class:`Router`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import grpc

from banditroute.client.calls import (
    CallResult,
    DecisionRef,
    Fallback,
    check_scorers,
    feedback_request,
    record_request,
    retry_request,
    route_request,
    score,
)
from banditroute.client.connection import ClientBase, Metadata
from banditroute.client.retry import RetryPolicy

__all__ = ["Router"]

log = logging.getLogger("banditroute.client")
T = TypeVar("T")


class RetryingStub:
    """A grpc stub whose calls carry metadata and a default deadline, and are retried.

    ``stub.Method(request, timeout=None)`` calls ``Method`` with the default deadline unless
    ``timeout`` is given, retrying as ``retry`` says (each attempt gets the whole deadline).
    """

    def __init__(
        self,
        stub: Any,
        metadata: Metadata,
        timeout: float | None,
        retry: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep

    def __getattr__(self, method: str) -> Callable[..., Any]:
        rpc = getattr(self._stub, method)

        def invoke(request: Any, *, timeout: float | None = None) -> Any:
            deadline = self._timeout if timeout is None else timeout
            attempt = 1
            while True:
                try:
                    return rpc(request, timeout=deadline, metadata=self._metadata)
                except grpc.RpcError as exc:
                    if not self._retry.should_retry(exc, attempt):
                        raise
                    self._sleep(self._retry.backoff(attempt))
                    attempt += 1
                    request = retry_request(request)

        return invoke


class Router(ClientBase):
    """A blocking client of a banditroute server.

    Parameters
    ----------
    address
        ``host:port`` of the server.
    tls
        Use TLS, verified against the system's roots unless ``root_certificates`` is given.
        Implied by any certificate argument.
    root_certificates
        PEM (bytes, text or a file path) of the CA that signed the server's certificate.
    client_cert, client_key
        PEM of this client's certificate and key, for mutual TLS.
    api_key
        Sent as ``x-api-key`` on Router calls when the server requires per-tenant keys.
    admin_token
        Sent as ``authorization: Bearer <token>`` on the :attr:`admin` calls.
    timeout
        Default deadline of each attempt, in seconds (None: no deadline).
    retry
        Which failures to retry and how long to wait between tries (:class:`RetryPolicy`).
    options
        grpc channel options, e.g. ``[("grpc.max_send_message_length", 8 << 20)]``.

    Examples
    --------
    ``address`` is a running server with the demo pool (``banditroute serve --demo``).

    >>> from banditroute.client import Router
    >>> def ask(model: str) -> str:
    ...     return f"{model}: 4"                 # call the model's API here
    >>> with Router(address) as router:
    ...     result = router.call("What is 2 + 2?", ask, quality=lambda answer: 1.0)
    ...     rated = router.feedback(result.decision_id, 1.0)   # thumbs up, later
    >>> result.value == f"{result.model}: 4", [a.ok for a in result.attempts]
    (True, [True])

    The parts of ``call`` one by one:

    >>> with Router(address) as router:
    ...     decision = router.route("Summarise: ...", route="default", max_cost_usd=0.01)
    ...     models = [decision.model, *(f.model for f in decision.fallbacks)]
    ...     outcome = router.record(decision.decision_id, quality=0.8, latency_ms=950.0)
    >>> outcome.duplicate
    False
    """

    _channels = grpc
    _retrying_stub = RetryingStub
    channel: grpc.Channel
    stub: RetryingStub
    admin: RetryingStub

    def route(self, prompt: str, *, timeout: float | None = None, **fields: Any) -> Any:
        """Ask which model should answer ``prompt``: a ``RouteResponse``.

        ``fields`` are ``RouteRequest``'s (``route``, ``candidates``, ``unit_id``,
        ``max_cost_usd``, ``numeric_context``...). A ``request_id`` is generated when none is
        given, so a retried Route gets the same decision back.
        """
        return self.stub.Route(route_request(prompt, fields), timeout=timeout)

    def record(
        self, decision_id: DecisionRef, *, timeout: float | None = None, **fields: Any
    ) -> Any:
        """Report how the decision's model did: a ``RecordOutcomeResponse`` (its ``reward``).

        ``decision_id`` is the decision's id, or the ``RouteResponse`` (or ``CallResult``) that
        carries it. ``fields`` are ``RecordOutcomeRequest``'s: ``quality`` in [0, 1] and/or
        ``success``, ``error``, ``input_tokens``, ``output_tokens``, ``cost_usd``,
        ``latency_ms``. A field it does not have, or a value of the wrong type, is a
        ``TypeError`` that names the field.
        """
        return self.stub.RecordOutcome(record_request(decision_id, fields), timeout=timeout)

    def feedback(
        self,
        decision_id: DecisionRef,
        rating: float,
        *,
        comment: str | None = None,
        source: str = "user",
        feedback_id: str = "",
        timeout: float | None = None,
    ) -> Any:
        """Attach a rating in [0, 1] (thumbs up 1.0, down 0.0; stars ``(n - 1) / 4``) to a
        decision (its id, ``RouteResponse`` or ``CallResult``): a ``SubmitFeedbackResponse``
        with the decision's new ``reward``."""
        request = feedback_request(decision_id, rating, comment, source, feedback_id)
        return self.stub.SubmitFeedback(request, timeout=timeout)

    def call(
        self,
        prompt: str,
        fn: Callable[[str], T],
        *,
        quality: Callable[[T], float] | None = None,
        usage: Callable[[T], Mapping[str, Any]] | None = None,
        timeout: float | None = None,
        **route_fields: Any,
    ) -> CallResult[T]:
        """Route ``prompt``, answer it with ``fn(model)``, fall back, and record the outcome.

        ``fn`` is called with the chosen model; when it raises (any ``Exception``), with the
        next model of the ranking, until one returns. The outcome is recorded for the decision
        as :mod:`banditroute.client.calls` documents: success and latency, the failed attempts
        in ``error``. ``quality(value)`` scores the chosen model's answer in [0, 1];
        ``usage(value)`` returns ``input_tokens``/``output_tokens``/``cost_usd`` for it.
        A failure to record is logged, not raised: the answer is returned all the same.

        Raises :class:`~banditroute.client.AllModelsFailed` (after recording the error) when
        every model raised, and ``grpc.RpcError`` when Route fails.
        """
        check_scorers(quality, usage)
        tries = Fallback(self.route(prompt, timeout=timeout, **route_fields))
        for model in tries.models():
            started = time.perf_counter()
            try:
                value = fn(model)
            except Exception as exc:
                tries.failed(model, started, exc)
                last_error: Exception = exc
                continue
            tries.answered(model, started)
            scored = score(value, quality, usage) if tries.chosen_answered else (None, None)
            outcome = self._record_quietly(tries.outcome_request(*scored), timeout)
            return tries.result(value, outcome)
        raise tries.failure(self._record_quietly(tries.outcome_request(), timeout)) from last_error

    def _record_quietly(self, request: Any, timeout: float | None) -> Any:
        try:
            return self.stub.RecordOutcome(request, timeout=timeout)
        except grpc.RpcError as exc:
            log.warning("could not record the outcome of decision %s: %s", request.decision_id, exc)
            return None

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
