"""The current RPC's deadline, published for the core: :func:`check_deadline` before slow work.

The API layer (:class:`banditroute.service.api.limits.LimitsInterceptor`) sets :data:`DEADLINE`
when a call with a deadline arrives; the core calls :func:`check_deadline` before expensive work
or a database wait and gives up early with :class:`DeadlineExceeded` (``DEADLINE_EXCEEDED``,
retryable). Outside an RPC there is no deadline and nothing to miss.

Examples
--------
>>> time_remaining() is None
True
>>> check_deadline()
"""

from __future__ import annotations

import contextvars
import time

from banditroute.service.errors import BanditrouteError

__all__ = ["DEADLINE", "DeadlineExceeded", "check_deadline", "time_remaining"]

#: ``time.monotonic()`` value of the current call's deadline (``None``: no deadline).
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "banditroute_deadline", default=None
)


class DeadlineExceeded(BanditrouteError):
    """The call's deadline passed (or would pass) before the work could be done."""

    code = "DEADLINE_EXCEEDED"
    retryable = True


def time_remaining() -> float | None:
    """Seconds left before the current RPC's deadline; ``None`` without a deadline."""
    deadline = DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def check_deadline(needed_s: float = 0.0, what: str = "the request") -> None:
    """Raise :class:`DeadlineExceeded` if fewer than ``needed_s`` seconds remain.

    Call it before expensive work or before waiting on the database: work whose answer
    nobody will read only takes capacity from calls that can still succeed.

    Parameters
    ----------
    needed_s
        Seconds the next step needs at least.
    what
        Name of the next step, for the error message.
    """
    remaining = time_remaining()
    if remaining is not None and remaining <= needed_s:
        raise DeadlineExceeded(f"deadline exceeded before {what}")
