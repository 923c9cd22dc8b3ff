"""Routing metrics against values computed by hand on tiny datasets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from banditroute.learners.metrics import aiq, apgr, convex_hull, cpt, oracle_choices, oracle_point


def test_convex_hull_drops_points_under_the_chord_and_after_the_peak() -> None:
    # (1, 0.3) lies under the chord (0, 0.2)-(2, 0.8) (0.5 there); (3, 0.7) is after the peak
    hull = convex_hull([0.0, 1.0, 2.0, 3.0], [0.2, 0.3, 0.8, 0.7])
    assert hull.tolist() == [[0.0, 0.2], [2.0, 0.8]]


def test_convex_hull_keeps_the_best_quality_among_equal_costs() -> None:
    hull = convex_hull([1.0, 1.0, 2.0], [0.4, 0.6, 0.9])
    assert hull.tolist() == [[1.0, 0.6], [2.0, 0.9]]


def test_convex_hull_is_order_independent() -> None:
    costs, quals = [3.0, 0.5, 2.0, 1.0], [0.9, 0.5, 0.84, 0.8]
    a = convex_hull(costs, quals)
    b = convex_hull(costs[::-1], quals[::-1])
    assert np.array_equal(a, b)
    # hand check: the chord (1,.8)-(3,.9) is .85 at cost 2, above (2, .84): dropped
    assert a.tolist() == [[0.5, 0.5], [1.0, 0.8], [3.0, 0.9]]


def test_aiq_matches_hand_computed_area() -> None:
    # hull (0.5,.5),(1,.8),(3,.9), extended to 4:
    # 0.5*(.5+.8)/2 = .325; 2*(.8+.9)/2 = 1.7; 1*.9 = .9 -> 2.925 / 4
    value = aiq([3.0, 0.5, 2.0, 1.0], [0.9, 0.5, 0.84, 0.8], max_cost=4.0)
    assert value == pytest.approx(2.925 / 4.0)


def test_aiq_defaults_max_cost_to_the_largest_cost() -> None:
    # hull (1, .5), (2, 1.0): area 0.75, over 2
    assert aiq([1.0, 2.0], [0.5, 1.0]) == pytest.approx(0.375)


def test_aiq_rejects_a_max_cost_below_the_points() -> None:
    with pytest.raises(ValueError, match="max_cost"):
        aiq([1.0, 3.0], [0.5, 0.9], max_cost=2.0)


def test_aiq_of_a_better_router_is_higher() -> None:
    worse = aiq([1.0, 2.0, 3.0], [0.5, 0.6, 0.7], max_cost=3.0)
    better = aiq([1.0, 2.0, 3.0], [0.6, 0.7, 0.8], max_cost=3.0)
    assert better > worse


def test_apgr_matches_hand_computed_value() -> None:
    # points (0,.6) (.25,.8) (1,.9); weak .6, strong .9
    # AUC = .25*(.6+.8)/2 + .75*(.8+.9)/2 = .175 + .6375 = .8125
    # (0.8125 - 0.6) / (0.9 - 0.6) = 0.708333...
    assert apgr([0.0, 0.25, 1.0], [0.6, 0.8, 0.9], 0.6, 0.9) == pytest.approx(0.2125 / 0.3)


def test_apgr_of_the_random_router_is_one_half() -> None:
    xs = np.linspace(0, 1, 11)
    assert apgr(xs, 0.6 + 0.3 * xs, 0.6, 0.9) == pytest.approx(0.5)


def test_cpt_matches_hand_computed_value() -> None:
    # target for 50%: .75, reached between (0,.6) and (.25,.8): .25 * .15/.2 = .1875
    assert cpt([0.0, 0.25, 1.0], [0.6, 0.8, 0.9], 0.6, 0.9, gap=0.5) == pytest.approx(0.1875)
    # target for 80%: .84, between (.25,.8) and (1,.9): .25 + .75 * .04/.1 = .55
    assert cpt([0.0, 0.25, 1.0], [0.6, 0.8, 0.9], 0.6, 0.9, gap=0.8) == pytest.approx(0.55)


def test_cpt_of_the_random_router_equals_the_gap_fraction() -> None:
    assert cpt([0.0, 1.0], [0.6, 0.9], 0.6, 0.9, gap=0.5) == pytest.approx(0.5)


def test_cpt_is_nan_when_the_target_is_never_reached() -> None:
    assert math.isnan(cpt([0.0, 0.5], [0.6, 0.7], 0.6, 0.9, gap=0.8))


def test_cpt_takes_the_first_crossing_of_a_non_monotone_curve() -> None:
    # quality reaches .75 at x=.2 (interpolating (0,.6)-(.2,.75)... exactly at the point .2)
    assert cpt([0.0, 0.2, 0.5, 1.0], [0.6, 0.75, 0.7, 0.9], 0.6, 0.9) == pytest.approx(0.2)


def test_oracle_picks_the_cheapest_correct_model() -> None:
    q = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    c = np.array([[0.1, 0.5, 0.3], [0.9, 0.2, 0.1], [0.4, 0.2, 0.3]])
    assert oracle_choices(q, c).tolist() == [2, 1, 1]
    acc, cost = oracle_point(q, c)
    assert acc == pytest.approx(2 / 3)
    assert cost == pytest.approx((0.3 + 0.2 + 0.2) / 3)


def test_oracle_with_a_cost_weight_trades_quality_for_cost() -> None:
    q = np.array([[0.5, 1.0]])
    c = np.array([[0.0, 1.0]])
    assert oracle_choices(q, c, cost_weight=0.4).tolist() == [1]  # 1 - .4 > .5
    assert oracle_choices(q, c, cost_weight=0.6).tolist() == [0]  # 1 - .6 < .5


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: aiq([], []), "costs"),
        (lambda: aiq([1.0], [0.5, 0.6]), "qualities"),
        (lambda: apgr([0.0, 1.0], [0.5, 0.6], 0.5, 0.5), "strong_quality"),
        (lambda: apgr([0.5, 0.5], [0.5, 0.6], 0.5, 0.6), "strong_fractions"),
        (lambda: cpt([0.0, 1.5], [0.5, 0.6], 0.5, 0.6), "strong_fractions"),
        (lambda: cpt([0.0, 1.0], [0.5, 0.6], 0.5, 0.6, gap=2.0), "gap"),
        (lambda: oracle_choices(np.zeros((2, 2)), np.zeros((2, 3))), "cost"),
    ],
    ids=["empty", "length-mismatch", "no-gap", "one-fraction", "fraction-range", "gap-range",
         "shape"],
)
def test_metrics_reject_bad_input_with_a_named_parameter(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
