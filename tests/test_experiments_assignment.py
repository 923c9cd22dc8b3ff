"""Sticky bucketing and minimal-movement ramps (banditroute.service.experiments.assignment)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banditroute.service.errors import InvalidArgument
from banditroute.service.experiments.assignment import (
    BUCKETS,
    Allocation,
    VariantSpec,
    bucket_of,
    initial_allocation,
    moved_buckets,
    rebalance,
    validate_variants,
    weights_to_counts,
)

UNITS = [f"user-{i}" for i in range(20_000)]


def _owners(alloc: Allocation, salt: str) -> list[str]:
    return [alloc.owner(bucket_of(salt, u)) for u in UNITS]


def test_assignment_bucket_is_stable_known_value() -> None:
    # Pinned: a change of hash would silently reshuffle every running experiment.
    assert bucket_of("salt", "user-1") == 2683
    assert bucket_of("exp", "") == bucket_of("exp", "")


def test_assignment_buckets_are_uniform() -> None:
    counts = [0] * 10
    for u in UNITS:
        counts[bucket_of("uniform", u) * 10 // BUCKETS] += 1
    expected = len(UNITS) / 10
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001


def test_assignment_ramp_moves_only_the_expected_fraction_of_units() -> None:
    salt = "ramp-test"
    steps = [(95, 5), (80, 20), (50, 50)]
    alloc = initial_allocation({"control": 95, "treatment": 5})
    before = _owners(alloc, salt)
    for (_c_old, t_old), (c_new, t_new) in itertools.pairwise(steps):
        new_alloc = rebalance(alloc, {"control": c_new, "treatment": t_new})
        after = _owners(new_alloc, salt)
        moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
        # Only control -> treatment moves; nobody leaves treatment.
        assert all(b == "control" and a == "treatment" for b, a in moved)
        p = (t_new - t_old) / 100
        sd = math.sqrt(len(UNITS) * p * (1 - p))
        assert abs(len(moved) - len(UNITS) * p) < 4 * sd
        assert moved_buckets(alloc, new_alloc) == (t_new - t_old) * BUCKETS // 100
        alloc, before = new_alloc, after
    share = sum(o == "treatment" for o in before) / len(UNITS)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(UNITS))


weights_strategy = st.lists(
    st.integers(min_value=0, max_value=1000), min_size=3, max_size=3
).filter(lambda w: sum(w) > 0)


@settings(max_examples=200, deadline=None)
@given(st.lists(weights_strategy, min_size=2, max_size=6))
def test_assignment_rebalance_moves_the_minimum(sequence: list[list[int]]) -> None:
    def as_percent(raw: list[int]) -> dict[str, float]:
        total = sum(raw)
        pct = [100.0 * w / total for w in raw]
        pct[-1] = 100.0 - sum(pct[:-1])
        return {f"v{i}": max(p, 0.0) for i, p in enumerate(pct)}

    alloc = initial_allocation(as_percent(sequence[0]))
    for raw in sequence[1:]:
        weights = as_percent(raw)
        new = rebalance(alloc, weights)
        target = weights_to_counts(weights)
        assert {k: v for k, v in new.counts().items()} == {k: v for k, v in target.items() if v}
        old_counts = alloc.counts()
        lower_bound = sum(max(0, target[k] - old_counts.get(k, 0)) for k in target)
        assert moved_buckets(alloc, new) == lower_bound
        alloc = Allocation.from_json(new.to_json())


def test_assignment_three_way_split_accepts_rounding() -> None:
    validate_variants([VariantSpec(n, "p", weight=33.33) for n in "abc"])
    assert sum(weights_to_counts({"a": 33.33, "b": 33.33, "c": 33.33}).values()) == BUCKETS


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ([], "at least one variant"),
        ([VariantSpec("a", "p", weight=60), VariantSpec("b", "p", weight=30)], "sum to 100"),
        ([VariantSpec("a", "p", weight=110), VariantSpec("b", "p", weight=-10)], "weight"),
        ([VariantSpec("a", "p", weight=math.nan)], "finite"),
        ([VariantSpec("a", "p", weight=100), VariantSpec("a", "q", weight=0)], "duplicate"),
        (
            [VariantSpec("a", "p", weight=100), VariantSpec("s", "q", weight=5, shadow=True)],
            "shadow variant must have weight 0",
        ),
        (
            [
                VariantSpec("a", "p", weight=50, control=True),
                VariantSpec("b", "q", weight=50, control=True),
            ],
            "at most one",
        ),
        (
            [VariantSpec("a", "p", weight=100), VariantSpec("s", "q", shadow=True, control=True)],
            "cannot be the control",
        ),
        ([VariantSpec("s", "q", shadow=True)], "served"),
        ([VariantSpec("", "p", weight=100)], "variant name"),
        ([VariantSpec("a b", "p", weight=100)], "variant name"),
        ([VariantSpec("a", "", weight=100)], "needs a policy"),
    ],
    ids=[
        "empty",
        "sum-90",
        "negative",
        "nan",
        "duplicate",
        "shadow-weight",
        "two-controls",
        "shadow-control",
        "only-shadow",
        "empty-name",
        "bad-name",
        "no-policy",
    ],
)
def test_assignment_invalid_variants_are_rejected(
    variants: list[VariantSpec], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_variants(variants)


def test_assignment_allocation_must_tile_the_bucket_space() -> None:
    with pytest.raises(ValueError, match="tile"):
        Allocation(((0, 500, "a"), (600, BUCKETS, "b")))
