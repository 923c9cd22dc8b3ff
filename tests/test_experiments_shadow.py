"""Shadow scoring and off-policy estimates of variants (pure parts)."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.learners.registry import make_policy
from banditroute.service.core.assignment import Assignment, PolicyKey, RouteEntry
from banditroute.service.experiments.shadow import score_shadows, shadow_key
from banditroute.service.experiments.stats import LoggedRow, off_policy_estimates
from banditroute.service.experiments.views import VariantView
from tests.helpers import experiment_cache

ARMS = ["a", "b", "c"]


def test_shadow_scores_every_shadow_and_skips_unknown_ones() -> None:
    fixed = make_policy("fixed", ARMS, dim=4, model="c")
    uniform = make_policy("uniform", ARMS, dim=4)
    policies = {PolicyKey("fixed", 1): fixed, PolicyKey("uniform", 2): uniform}
    assignment = Assignment(
        PolicyKey("served", 1),
        "e",
        "v",
        7,
        (PolicyKey("fixed", 1), PolicyKey("uniform", 2), PolicyKey("missing", 1)),
    )
    out = score_shadows(assignment, policies.get, np.zeros(4), ARMS, np.random.default_rng(0))
    assert out is not None and set(out) == {"fixed@1", "uniform@2"}
    assert out["fixed@1"]["model"] == "c" and out["fixed@1"]["propensity"] == 1.0
    assert out["uniform@2"]["probabilities"] == pytest.approx({a: 1 / 3 for a in ARMS})


def test_shadow_none_without_shadows_or_usable_candidates() -> None:
    fixed = make_policy("fixed", ARMS, dim=4, model="c")
    no_shadow = Assignment(PolicyKey("served", 1))
    assert score_shadows(no_shadow, lambda k: fixed, np.zeros(4), ARMS) is None
    foreign = Assignment(PolicyKey("served", 1), shadows=(PolicyKey("fixed", 1),))
    assert score_shadows(foreign, lambda k: fixed, np.zeros(4), ["zzz"]) is None


def test_shadow_resolver_never_serves_shadow_policies() -> None:
    cache = experiment_cache(
        "r",
        {"control": (50, PolicyKey("p", 1)), "treatment": (50, PolicyKey("q", 1))},
        shadows=(PolicyKey("s", 1),),
    )
    route = RouteEntry("", "r", PolicyKey("p", 1), ())
    served = {cache.resolve("", route, f"u{i}").policy for i in range(500)}
    assert served == {PolicyKey("p", 1), PolicyKey("q", 1)}
    # Units without any key still get a variant (random, not sticky).
    assert cache.resolve("", route, "").variant in ("control", "treatment")
    other = RouteEntry("", "other", PolicyKey("x", 3), ())
    assert cache.resolve("", other, "u1") == Assignment(PolicyKey("x", 3))


def test_off_policy_estimates_of_a_shadow_match_the_truth() -> None:
    # Logged: uniform over 3 models; model "a" pays 1, others 0. A shadow that always picks
    # "a" is worth 1; IPS/SNIPS/DR must recover it from the logged propensities.
    rng = np.random.default_rng(0)
    key = shadow_key("always-a", 1)
    rows = []
    for _ in range(3000):
        m = ARMS[int(rng.integers(3))]
        rows.append(
            LoggedRow(
                "control",
                m,
                1 / 3,
                float(m == "a"),
                {
                    key: {
                        "model": "a",
                        "propensity": 1.0,
                        "probabilities": {"a": 1.0, "b": 0.0, "c": 0.0},
                    }
                },
                {a: 1 / 3 for a in ARMS},
            )
        )
    shadow = VariantView("s", "always-a", 1, 0.0, True, False)
    est = off_policy_estimates(rows, shadow)
    assert est is not None
    ips, snips, dr = est
    assert ips.ci_low < 1.0 < ips.ci_high and ips.n == 3000
    assert snips.value == pytest.approx(1.0) and dr.value == pytest.approx(1.0)
    control = VariantView("control", "uniform", 1, 100.0, False, True)
    on_policy = off_policy_estimates(rows, control)
    assert on_policy is not None and on_policy[0].value == pytest.approx(
        np.mean([r.reward for r in rows])
    )
    unknown = VariantView("t", "never-logged", 1, 0.0, False, False)
    assert off_policy_estimates(rows, unknown) is None
