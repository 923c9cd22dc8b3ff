"""Deterministic, sticky assignment of units to experiment variants.

A unit (a user or session: ``RouteRequest.unit_id``, falling back to ``request_id``) is hashed
with the experiment's salt into one of :data:`BUCKETS` buckets; an :class:`Allocation` says
which variant owns each bucket. The hash is BLAKE2b (64-bit digest) of
``utf8(salt) + b"\\x00" + utf8(unit_key)``, read big-endian, modulo :data:`BUCKETS`: it is
the same in every process, replica, Python version and restart (Python's ``hash`` is not).

Minimal movement on ramps
-------------------------
Weights are turned into whole bucket counts (0.01% resolution). A new experiment lays the
variants out as contiguous ranges in variant order. A ramp never relays the space out: every
variant whose count shrinks releases buckets from the top of its highest range, and every
variant whose count grows takes released buckets, lowest first (:func:`rebalance`). So the
number of buckets that change owner is ``sum(max(0, new_v - old_v))`` -- the total-variation
distance between old and new weights, which is also a lower bound for *any* reassignment
(a variant growing by ``d`` buckets must receive ``d`` buckets it did not own). Ramping a
treatment 5% -> 20% -> 50% therefore moves exactly 15% and then 30% of units, all of them from
control to treatment, and nobody who was in treatment ever leaves it.
``tests/test_experiments_assignment.py`` checks this property on random ramp sequences.

Examples
--------
>>> alloc = initial_allocation({"control": 95.0, "treatment": 5.0})
>>> alloc.counts()
{'control': 9500, 'treatment': 500}
>>> ramped = rebalance(alloc, {"control": 80.0, "treatment": 20.0})
>>> ramped.counts() == {"control": 8000, "treatment": 2000}
True
>>> moved_buckets(alloc, ramped)
1500
>>> bucket_of("exp-1", "user-42") == bucket_of("exp-1", "user-42")
True
>>> 0 <= bucket_of("exp-1", "user-42") < BUCKETS
True
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from banditroute.service.errors import InvalidArgument

__all__ = [
    "BUCKETS",
    "WEIGHT_TOLERANCE",
    "Allocation",
    "VariantSpec",
    "bucket_of",
    "initial_allocation",
    "moved_buckets",
    "rebalance",
    "unit_key",
    "validate_variants",
    "validate_weights",
    "weights_to_counts",
]

#: Number of buckets; one bucket is 0.01% of traffic.
BUCKETS = 10_000
#: Served weights must sum to 100 within this many percentage points (one bucket), so that
#: e.g. three variants at 33.33% are accepted.
WEIGHT_TOLERANCE = 0.01
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def bucket_of(salt: str, unit_key: str) -> int:
    """Return the stable bucket in ``[0, BUCKETS)`` of ``unit_key`` under ``salt``.

    Examples
    --------
    >>> bucket_of("salt", "user-1")
    2683
    >>> bucket_of("other-salt", "user-1") != bucket_of("salt", "user-1")
    True
    """
    digest = hashlib.blake2b(
        salt.encode("utf-8") + b"\x00" + unit_key.encode("utf-8"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def unit_key(unit_id: str, request_id: str, fallback: str = "") -> str:
    """Return the key a request is bucketed by: ``unit_id``, else ``request_id``, else
    ``fallback`` (e.g. the decision id, which makes assignment per request).

    Examples
    --------
    >>> unit_key("user-1", "req-9"), unit_key("", "req-9"), unit_key("", "", "dec-3")
    ('user-1', 'req-9', 'dec-3')
    """
    return unit_id or request_id or fallback


@dataclass(frozen=True)
class VariantSpec:
    """One variant of an experiment as configured (validated by :func:`validate_variants`).

    Parameters
    ----------
    name
        Unique within the experiment: letters, digits, ``_ . -``; at most 64 characters.
    policy, policy_version
        The policy version this variant serves (or scores, when ``shadow``).
    weight
        Share of traffic in percent; served variants sum to 100, shadow variants have 0.
    shadow
        Scores every request and logs its choice, never serves.
    control
        The variant others are compared against (at most one; never a shadow).
    """

    name: str
    policy: str
    policy_version: int = 0
    weight: float = 0.0
    shadow: bool = False
    control: bool = False


def validate_variants(variants: Sequence[VariantSpec]) -> None:
    """Raise :class:`~banditroute.service.errors.InvalidArgument` unless ``variants`` form a valid
    experiment.

    Rules: at least one served (non-shadow) variant; unique well-formed names; a policy name on
    each; finite non-negative weights; shadow weight 0; at most one control, and it is served;
    served weights sum to 100 (within :data:`WEIGHT_TOLERANCE`).

    Examples
    --------
    >>> validate_variants([VariantSpec("a", "p", weight=50), VariantSpec("b", "q", weight=50)])
    >>> validate_variants([VariantSpec("a", "p", weight=60), VariantSpec("b", "q", weight=50)])
    Traceback (most recent call last):
    ...
    banditroute.service.errors.InvalidArgument: served variant weights must sum to 100, got 110
    """
    if not variants:
        raise InvalidArgument("an experiment needs at least one variant")
    seen: set[str] = set()
    for v in variants:
        if not _NAME.match(v.name):
            raise InvalidArgument(
                f"variant name {v.name!r} must be 1-64 letters, digits, '_', '.', '-'"
            )
        if v.name in seen:
            raise InvalidArgument(f"duplicate variant name {v.name!r}")
        seen.add(v.name)
        if not v.policy:
            raise InvalidArgument(f"variant {v.name!r} needs a policy")
        if v.policy_version < 0:
            raise InvalidArgument(f"variant {v.name!r}: policy_version must be >= 0")
        if v.shadow and v.control:
            raise InvalidArgument(f"variant {v.name!r}: a shadow variant cannot be the control")
        if v.shadow and v.weight != 0:
            raise InvalidArgument(
                f"variant {v.name!r}: a shadow variant must have weight 0, got {v.weight:g}"
            )
    if sum(1 for v in variants if v.control) > 1:
        raise InvalidArgument("at most one variant may be the control")
    served = [v for v in variants if not v.shadow]
    if not served:
        raise InvalidArgument("an experiment needs at least one served (non-shadow) variant")
    validate_weights({v.name: v.weight for v in served})


def validate_weights(weights: Mapping[str, float]) -> None:
    """Raise :class:`~banditroute.service.errors.InvalidArgument` unless the served ``weights`` are
    finite, non-negative and sum to 100.

    Examples
    --------
    >>> validate_weights({"a": 99.995, "b": 0.005})
    >>> validate_weights({"a": 100.0, "b": -1.0})
    Traceback (most recent call last):
    ...
    banditroute.service.errors.InvalidArgument: variant 'b': weight must be a finite number in [0, 100], got -1
    """  # noqa: E501
    for name, w in weights.items():
        if not isinstance(w, int | float) or not math.isfinite(w) or not 0 <= w <= 100:
            raise InvalidArgument(
                f"variant {name!r}: weight must be a finite number in [0, 100], got {w:g}"
            )
    total = math.fsum(weights.values())
    if abs(total - 100.0) > WEIGHT_TOLERANCE + 1e-9:
        raise InvalidArgument(f"served variant weights must sum to 100, got {total:g}")


def weights_to_counts(weights: Mapping[str, float]) -> dict[str, int]:
    """Turn percentages into bucket counts summing to :data:`BUCKETS` (largest remainder,
    ties broken by the mapping's order).

    Examples
    --------
    >>> weights_to_counts({"a": 33.333333, "b": 33.333333, "c": 33.333334})
    {'a': 3333, 'b': 3333, 'c': 3334}
    """
    validate_weights(weights)
    total = math.fsum(weights.values())
    exact = {k: w / total * BUCKETS for k, w in weights.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    short = BUCKETS - sum(counts.values())
    order = sorted(exact, key=lambda k: -(exact[k] - counts[k]))
    for k in order[:short]:
        counts[k] += 1
    return counts


@dataclass(frozen=True)
class Allocation:
    """Which variant owns each bucket: sorted, non-overlapping ``(start, end, variant)`` ranges
    (``end`` exclusive) covering ``[0, BUCKETS)``.

    Examples
    --------
    >>> a = Allocation(((0, 500, "t"), (500, 10_000, "c")))
    >>> a.owner(499), a.owner(500)
    ('t', 'c')
    >>> Allocation.from_json(a.to_json()) == a
    True
    """

    ranges: tuple[tuple[int, int, str], ...]
    _starts: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pos = 0
        for start, end, _ in self.ranges:
            if start != pos or end <= start:
                raise ValueError(f"allocation ranges must tile [0, {BUCKETS}): {self.ranges}")
            pos = end
        if pos != BUCKETS:
            raise ValueError(f"allocation ranges must tile [0, {BUCKETS}): {self.ranges}")
        object.__setattr__(self, "_starts", [r[0] for r in self.ranges])

    def owner(self, bucket: int) -> str:
        """The variant that owns ``bucket``."""
        return self.ranges[bisect.bisect_right(self._starts, bucket) - 1][2]

    def counts(self) -> dict[str, int]:
        """Buckets per variant, in order of first appearance."""
        out: dict[str, int] = {}
        for start, end, name in self.ranges:
            out[name] = out.get(name, 0) + end - start
        return out

    def to_json(self) -> list[list[int | str]]:
        """A JSON-serializable form (stored in ``experiments.allocation``)."""
        return [[s, e, n] for s, e, n in self.ranges]

    @classmethod
    def from_json(cls, data: Iterable[Sequence[int | str]]) -> Allocation:
        """Inverse of :meth:`to_json`."""
        return cls(tuple((int(s), int(e), str(n)) for s, e, n in data))


def _merge(pieces: Iterable[tuple[int, int, str]]) -> tuple[tuple[int, int, str], ...]:
    out: list[tuple[int, int, str]] = []
    for s, e, n in sorted(pieces):
        if out and out[-1][2] == n and out[-1][1] == s:
            out[-1] = (out[-1][0], e, n)
        else:
            out.append((s, e, n))
    return tuple(out)


def initial_allocation(weights: Mapping[str, float]) -> Allocation:
    """Lay the served variants out as contiguous ranges in the mapping's order.

    Examples
    --------
    >>> initial_allocation({"c": 50, "t": 50}).ranges
    ((0, 5000, 'c'), (5000, 10000, 't'))
    """
    pieces, pos = [], 0
    for name, count in weights_to_counts(weights).items():
        if count:
            pieces.append((pos, pos + count, name))
            pos += count
    return Allocation(_merge(pieces))


def rebalance(allocation: Allocation, weights: Mapping[str, float]) -> Allocation:
    """Reassign the fewest buckets so that the counts match ``weights``.

    Shrinking variants release buckets from the top of their highest ranges; growing variants
    (in the mapping's order) take the released buckets, lowest first. A variant absent from
    ``weights`` is treated as weight 0.

    Examples
    --------
    >>> a = initial_allocation({"c": 95, "t": 5})
    >>> rebalance(a, {"c": 80, "t": 20}).ranges
    ((0, 8000, 'c'), (8000, 10000, 't'))
    """
    new = weights_to_counts(weights)
    old = allocation.counts()
    kept: list[tuple[int, int, str]] = []
    free: list[tuple[int, int]] = []
    surplus = {n: old.get(n, 0) - new.get(n, 0) for n in old}
    for s, e, n in reversed(allocation.ranges):
        give = min(max(surplus.get(n, 0), 0), e - s)
        if give:
            free.append((e - give, e))
            surplus[n] -= give
        if e - give > s:
            kept.append((s, e - give, n))
    free.sort()
    for name, count in new.items():
        need = count - old.get(name, 0)
        while need > 0:
            s, e = free.pop(0)
            take = min(need, e - s)
            kept.append((s, s + take, name))
            if s + take < e:
                free.insert(0, (s + take, e))
            need -= take
    return Allocation(_merge(kept))


def moved_buckets(before: Allocation, after: Allocation) -> int:
    """Number of buckets whose owner differs between two allocations."""
    bounds = sorted({r[0] for r in before.ranges} | {r[0] for r in after.ranges} | {BUCKETS})
    return sum(
        hi - lo for lo, hi in itertools.pairwise(bounds) if before.owner(lo) != after.owner(lo)
    )
