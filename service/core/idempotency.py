"""Idempotent Route: a ``request_id`` answers the same request again, never another one.

A retry with the same ``request_id`` gets the stored decision (``replayed``). The same id with
another payload is ``ALREADY_EXISTS``: within a process every field is compared through a
fingerprint; across processes, what the stored decision row keeps (the prompt's SHA-256, the
route, the unit, the contexts and the candidates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from banditroute.service.errors import AlreadyExists

if TYPE_CHECKING:
    from banditroute.service.core.route_request import RouteRequest

__all__ = ["check_fingerprint", "check_same_request", "fingerprint"]


def fingerprint(req: RouteRequest) -> bytes:
    """SHA-256 of every field of a Route request (the per-process idempotency check)."""
    h = hashlib.sha256()
    for part in (
        req.prompt,
        "\x00".join(req.candidates),
        req.route,
        req.unit_id,
        repr(sorted(req.numeric_context.items())),
        repr(sorted(req.categorical_context.items())),
        repr(req.max_cost_usd),
    ):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


def _reused(req: RouteRequest, what: str) -> AlreadyExists:
    return AlreadyExists(
        f"request_id {req.request_id[:128]!r} was already used for a different request "
        f"({what} differs); use a new request_id for a new request"
    )


def check_fingerprint(req: RouteRequest, stored: bytes, fingerprint: bytes) -> None:
    if stored != fingerprint:
        raise _reused(req, "the payload")


def check_same_request(req: RouteRequest, row: Mapping[str, Any], default_route: str) -> None:
    """Refuse a stored decision of ``req.request_id`` that answered another request.

    Compares what the decision row keeps: the prompt's SHA-256, the route, the unit, the
    contexts, and the candidates (the stored ranking must be among the requested ones)."""
    stored_hash = row.get("prompt_hash")
    if stored_hash is not None:
        digest = hashlib.sha256(req.prompt.encode("utf-8", "surrogatepass")).digest()
        if bytes(stored_hash) != digest:
            raise _reused(req, "the prompt")
    if (row.get("route") or default_route) != req.route:
        raise _reused(req, "the route")
    if "unit_id" in row and (row["unit_id"] or "") != req.unit_id:
        raise _reused(req, "unit_id")
    if "numeric_context" in row and dict(row["numeric_context"] or {}) != dict(req.numeric_context):
        raise _reused(req, "numeric_context")
    if "categorical_context" in row and dict(row["categorical_context"] or {}) != dict(
        req.categorical_context
    ):
        raise _reused(req, "categorical_context")
    if req.candidates and not set(row.get("candidates") or ()) <= set(req.candidates):
        raise _reused(req, "the candidates")
