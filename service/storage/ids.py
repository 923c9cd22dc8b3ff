"""Decision ids: UUIDv7 (RFC 9562), whose millisecond timestamp is the decision's ``created_at``.

So a decision id alone names the ``decisions`` partition holding the row.

Examples
--------
>>> from datetime import datetime, timezone
>>> at = datetime(2026, 11, 27, 21, 30, 0, 123000, tzinfo=timezone.utc)
>>> did = new_decision_id(at)
>>> did.version, decision_created_at(did) == at
(7, True)
>>> parse_decision_id(str(did)) == (did, at)
True
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from banditroute.service.errors import InvalidArgument

__all__ = ["decision_created_at", "new_decision_id", "parse_decision_id"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_RANDOM_BLOCK = 4096  # bytes drawn from os.urandom at a time (409 ids per syscall)
_RANDOM_PER_ID = 10


def _fresh_block() -> tuple[bytes, Iterator[int]]:
    return os.urandom(_RANDOM_BLOCK), itertools.count()


# (block, slot counter): ids take 10-byte slots of a 4 KiB os.urandom block, one syscall per
# 409 ids instead of one per id. next() on an itertools.count is atomic under the GIL and every
# block has its own counter, so no slot is ever handed out twice, even from several threads
# (a racing refill only wastes a block). A forked child drops its parent's block, so parent
# and child never share random bytes.
_random_state = _fresh_block()


def _drop_random_block() -> None:
    global _random_state
    _random_state = _fresh_block()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_random_block)


def _random_80_bits() -> int:
    global _random_state
    block, slots = _random_state
    start = next(slots) * _RANDOM_PER_ID
    if start + _RANDOM_PER_ID > _RANDOM_BLOCK:
        block, slots = _random_state = _fresh_block()
        start = next(slots) * _RANDOM_PER_ID
    return int.from_bytes(block[start : start + _RANDOM_PER_ID], "big")


def new_decision_id(at: datetime | None = None) -> uuid.UUID:
    """Return a new UUIDv7 for a decision made at ``at`` (default: now), millisecond precision."""
    at_ms = time.time_ns() // 1_000_000 if at is None else (at - _EPOCH) // _ONE_MS
    rand = _random_80_bits()
    value = (at_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)


def decision_created_at(decision_id: uuid.UUID) -> datetime:
    """Return the creation time encoded in a UUIDv7 decision id (UTC, millisecond precision).

    Raises
    ------
    InvalidArgument
        When ``decision_id`` is not a UUIDv7.
    """
    if decision_id.version != 7 or decision_id.variant != uuid.RFC_4122:
        raise InvalidArgument(f"decision_id {str(decision_id)!r} is not a banditroute decision id")
    millis = decision_id.int >> 80
    return datetime.fromtimestamp(millis // 1000, tz=UTC).replace(microsecond=millis % 1000 * 1000)


def parse_decision_id(text: str) -> tuple[uuid.UUID, datetime]:
    """Parse a client-supplied decision id into ``(uuid, created_at)``.

    Raises
    ------
    InvalidArgument
        For anything that is not the canonical text of a UUIDv7.

    >>> parse_decision_id("not-a-uuid")
    Traceback (most recent call last):
    ...
    banditroute.service.errors.InvalidArgument: decision_id 'not-a-uuid' is not a valid UUID
    """
    if not isinstance(text, str) or len(text) > 64:
        raise InvalidArgument("decision_id is not a valid UUID")
    try:
        decision_id = uuid.UUID(text)
    except ValueError:
        raise InvalidArgument(f"decision_id {text!r} is not a valid UUID") from None
    return decision_id, decision_created_at(decision_id)
