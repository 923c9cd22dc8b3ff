"""When to retry a failed call, and how long to wait first.

The proto (``router.proto``, ``admin.proto``) says which status codes to retry:
``RESOURCE_EXHAUSTED`` (over the in-flight cap) and ``UNAVAILABLE`` (database down for writes,
or no connection) with backoff. Every Router RPC is safe to retry: the client gives each Route
a ``request_id``, outcomes are idempotent for identical repeats, and feedback is keyed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

__all__ = ["NO_RETRY", "RetryPolicy"]

#: A message over the server's size limit is refused with RESOURCE_EXHAUSTED by grpc itself;
#: sending it again cannot succeed.
_TOO_LARGE = "larger than max"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter over the retryable status codes.

    Parameters
    ----------
    max_attempts
        Tries per call, the first included; 1 turns retries off.
    initial_backoff_s
        Upper bound of the first wait; each later bound is ``multiplier`` times the last, up to
        ``max_backoff_s``. The wait is drawn uniformly below the bound.
    codes
        Status codes worth another try.

    Examples
    --------
    >>> policy = RetryPolicy(max_attempts=3, initial_backoff_s=0.1)
    >>> policy.retryable(grpc.StatusCode.UNAVAILABLE), policy.retryable(grpc.StatusCode.NOT_FOUND)
    (True, False)
    >>> [0 <= policy.backoff(n) <= 0.1 * 2 ** (n - 1) for n in (1, 2)]
    [True, True]
    >>> RetryPolicy(max_attempts=0)
    Traceback (most recent call last):
    ...
    ValueError: max_attempts must be >= 1, got 0
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    codes: frozenset[grpc.StatusCode] = frozenset(
        {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
    )

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError(
                "backoffs must satisfy 0 <= initial_backoff_s <= max_backoff_s, got "
                f"{self.initial_backoff_s} and {self.max_backoff_s}"
            )
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")

    def retryable(self, code: grpc.StatusCode | None, details: str | None = "") -> bool:
        """Whether a call that failed with ``code`` (and ``details``) is worth another try."""
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in (details or ""):
            return False
        return code in self.codes

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the second attempt)."""
        bound = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1))
        return random.uniform(0.0, bound)

    def should_retry(self, error: grpc.RpcError, attempt: int) -> bool:
        """Whether to try again after ``error`` ended attempt number ``attempt`` (from 1)."""
        if attempt >= self.max_attempts:
            return False
        # Sync errors are grpc.Call objects, grpc.aio's AioRpcError is not; both have these.
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else ""
        return self.retryable(code, details)


#: No retries: every failure is raised at once.
NO_RETRY = RetryPolicy(max_attempts=1)
