"""Guardrail decisions (pure): stop a worse variant, never an equal one, with fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest

from banditroute.learners.sequential import MeanSummary
from banditroute.service.errors import InvalidArgument
from banditroute.service.experiments.guardrails import GuardrailConfig, Observed, evaluate_guardrail

CONFIG = GuardrailConfig(
    max_reward_drop=0.05, max_cost_increase=0.2, confidence=0.95, min_samples=100
)


def _observed(rng: np.random.Generator, n: int, p_success: float, cost: float) -> Observed:
    reward = rng.binomial(1, p_success, size=n).astype(float)
    costs = rng.gamma(4.0, cost / 4.0, size=n)
    return Observed(MeanSummary.from_values(reward), MeanSummary.from_values(costs))


def _first_stop(
    seed: int, p_variant: float, cost_variant: float, *, checks: int = 40, step: int = 50
) -> tuple[int | None, str]:
    """Evaluate the guardrail every ``step`` outcomes, as the service does; return the sample
    size at the first stop (None if never) and the metric."""
    rng = np.random.default_rng(seed)
    control_parts: list[Observed] = []
    variant_parts: list[Observed] = []
    for k in range(1, checks + 1):
        control_parts.append(_observed(rng, step, 0.6, 0.010))
        variant_parts.append(_observed(rng, step, p_variant, cost_variant))
        verdict = evaluate_guardrail(CONFIG, _merge(control_parts), _merge(variant_parts))
        if verdict.stop:
            return k * step, verdict.metric
    return None, ""


def _merge(parts: list[Observed]) -> Observed:
    def combine(xs: list[MeanSummary]) -> MeanSummary:
        n = sum(x.n for x in xs)
        total = sum(x.n * x.mean for x in xs)
        sq = sum((x.n - 1) * x.variance + x.n * x.mean**2 for x in xs)
        return MeanSummary.from_sums(n, total, sq)

    return Observed(combine([p.reward for p in parts]), combine([p.cost for p in parts]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_guardrail_stops_a_clearly_worse_variant(seed: int) -> None:
    n, metric = _first_stop(seed, p_variant=0.35, cost_variant=0.010)
    assert n is not None and metric == "reward"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_guardrail_stops_a_much_more_expensive_variant(seed: int) -> None:
    n, metric = _first_stop(seed, p_variant=0.6, cost_variant=0.020)
    assert n is not None and metric == "cost"


@pytest.mark.parametrize("seed", range(10, 20))
def test_guardrail_does_not_stop_an_equal_variant(seed: int) -> None:
    n, _ = _first_stop(seed, p_variant=0.6, cost_variant=0.010)
    assert n is None


def test_guardrail_does_not_stop_a_variant_within_the_margin() -> None:
    # 3 points worse with a 5-point margin: never stopped, even after 2,000 outcomes per side.
    assert all(_first_stop(s, p_variant=0.57, cost_variant=0.011)[0] is None for s in range(5))


def test_guardrail_waits_for_min_samples() -> None:
    rng = np.random.default_rng(0)
    control, worse = _observed(rng, 50, 0.9, 0.01), _observed(rng, 50, 0.1, 0.01)
    verdict = evaluate_guardrail(CONFIG, control, worse)
    assert not verdict.stop and "waiting" in verdict.reason


def test_guardrail_reason_names_the_numbers() -> None:
    rng = np.random.default_rng(0)
    control, worse = _observed(rng, 1000, 0.6, 0.01), _observed(rng, 1000, 0.3, 0.01)
    verdict = evaluate_guardrail(CONFIG, control, worse)
    assert verdict.stop and "always-valid" in verdict.reason and "-0.05" in verdict.reason


def test_guardrail_disabled_never_stops() -> None:
    rng = np.random.default_rng(0)
    control, worse = _observed(rng, 1000, 0.9, 0.01), _observed(rng, 1000, 0.1, 0.05)
    assert not evaluate_guardrail(GuardrailConfig(), control, worse).stop


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_reward_drop": -0.1},
        {"max_cost_increase": float("inf")},
        {"confidence": 1.0},
        {"confidence": 0.2},
        {"min_samples": 1},
    ],
    ids=["negative-drop", "infinite-cost", "confidence-1", "confidence-low", "min-samples"],
)
def test_guardrail_invalid_config_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument, match="guardrail"):
        GuardrailConfig(**kwargs)  # type: ignore[arg-type]
