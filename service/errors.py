"""Domain errors of banditroute.

Application code raises these; one gRPC interceptor (``banditroute.service.api``) maps each to its
status code, and the CLI prints the message and exits 1. Anything that is not a
:class:`BanditrouteError` is a bug and becomes ``INTERNAL`` with a generic message.

Examples
--------
>>> err = NotFound("route 'default' not found")
>>> isinstance(err, BanditrouteError), err.code, str(err)
(True, 'NOT_FOUND', "route 'default' not found")
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BanditrouteError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "error_class",
]


class BanditrouteError(Exception):
    """Base of every domain error; ``code`` names the gRPC status it maps to.

    Parameters
    ----------
    message
        Human-readable explanation, safe to return to the client (no secrets, no prompt text).
    """

    code: str = "UNKNOWN"
    #: Whether the client may retry the same request unchanged.
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidArgument(BanditrouteError):
    """The request is malformed: empty prompt, non-finite number, unknown value, too large."""

    code = "INVALID_ARGUMENT"


class NotFound(BanditrouteError):
    """A referenced entity (decision, route, model, policy, key) does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(BanditrouteError):
    """The entity exists already with different content (a conflicting duplicate)."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(BanditrouteError):
    """The system is not in a state that allows the operation (e.g. schema not migrated)."""

    code = "FAILED_PRECONDITION"


class Unauthenticated(BanditrouteError):
    """No credentials, or credentials that are not valid (unknown or revoked key/token)."""

    code = "UNAUTHENTICATED"


class PermissionDenied(BanditrouteError):
    """Valid credentials that do not allow this operation (e.g. another tenant's data)."""

    code = "PERMISSION_DENIED"


class Unavailable(BanditrouteError):
    """A dependency (the database) is unreachable; nothing was written. Safe to retry."""

    code = "UNAVAILABLE"
    retryable = True


class ResourceExhausted(BanditrouteError):
    """Over a configured limit (in-flight requests, pending writes). Retry with backoff."""

    code = "RESOURCE_EXHAUSTED"
    retryable = True


def error_class(code: str) -> type[BanditrouteError]:
    """The domain error whose ``code`` is ``code`` (KeyError when none is).

    >>> error_class("NOT_FOUND") is NotFound
    True
    """
    return _BY_CODE[code]


_BY_CODE: dict[str, type[BanditrouteError]] = {
    cls.code: cls for cls in BanditrouteError.__subclasses__()
}
