"""Guardrails: stop a variant automatically when it is worse than control with confidence.

A variant is stopped when, at the experiment's confidence level, the always-valid interval
(:mod:`banditroute.learners.sequential`) shows

- its mean reward below control's by more than ``max_reward_drop``:
  ``upper(reward_v - reward_c) < -max_reward_drop``; or
- its mean cost above control's by more than the fraction ``max_cost_increase``:
  ``lower(cost_v - (1 + max_cost_increase) * cost_c) > 0``,

and both sides have at least ``min_samples`` outcomes. Because the intervals are confidence
sequences, evaluating the rule after every batch of outcomes (as the service does) keeps the
chance of stopping a variant that is in truth within the margins below ``1 - confidence``.
The pure decision is :func:`evaluate_guardrail`; :mod:`banditroute.service.experiments.manager`
applies it and records the reason as an audited event, and :func:`guardrail_loop` has it applied
periodically (the server runs it as a background task; every process may run it: stopping a
variant locks the experiment row and is idempotent).

Examples
--------
>>> from banditroute.learners.sequential import MeanSummary
>>> g = GuardrailConfig(max_reward_drop=0.05, confidence=0.95, min_samples=100)
>>> control = Observed(MeanSummary(500, 0.60, 0.24), MeanSummary(500, 0.01, 1e-5))
>>> worse = Observed(MeanSummary(500, 0.40, 0.24), MeanSummary(500, 0.01, 1e-5))
>>> v = evaluate_guardrail(g, control, worse)
>>> v.stop, v.metric
(True, 'reward')
>>> evaluate_guardrail(g, control, control).stop
False
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from banditroute.learners.sequential import Difference, MeanSummary, difference
from banditroute.service.errors import BanditrouteError, InvalidArgument

__all__ = [
    "GuardrailChecker",
    "GuardrailConfig",
    "Observed",
    "Verdict",
    "evaluate_guardrail",
    "guardrail_loop",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardrailConfig:
    """Thresholds of an experiment's guardrail (``0`` disables a rule).

    Parameters
    ----------
    max_reward_drop
        Absolute drop of mean reward against control that stops a variant.
    max_cost_increase
        Relative increase of mean cost against control (0.2 = 20%) that stops a variant.
    confidence
        Confidence level of the always-valid intervals, in (0, 1); default 0.95.
    min_samples
        Outcomes needed on both the variant and control before a rule may fire.
    """

    max_reward_drop: float = 0.0
    max_cost_increase: float = 0.0
    confidence: float = 0.95
    min_samples: int = 100

    def __post_init__(self) -> None:
        for name in ("max_reward_drop", "max_cost_increase"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(f"guardrail.{name} must be finite and >= 0, got {value!r}")
        if not math.isfinite(self.confidence) or not 0.5 <= self.confidence < 1:
            raise InvalidArgument(
                f"guardrail.confidence must be in [0.5, 1), got {self.confidence!r}"
            )
        if self.min_samples < 2:
            raise InvalidArgument(f"guardrail.min_samples must be >= 2, got {self.min_samples}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> GuardrailConfig:
        """From its stored or requested form; 0 or missing fields take the defaults.

        >>> GuardrailConfig.from_json({"max_reward_drop": 0.1, "min_samples": 0}).min_samples
        100
        """
        data = data or {}
        return cls(
            max_reward_drop=float(data.get("max_reward_drop") or 0.0),
            max_cost_increase=float(data.get("max_cost_increase") or 0.0),
            confidence=float(data.get("confidence") or 0.95),
            min_samples=int(data.get("min_samples") or 100),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored form (``experiments.guardrail``)."""
        return asdict(self)

    @property
    def enabled(self) -> bool:
        """Whether any rule is on."""
        return self.max_reward_drop > 0 or self.max_cost_increase > 0

    @property
    def alpha(self) -> float:
        """``1 - confidence``."""
        return 1.0 - self.confidence


@dataclass(frozen=True)
class Observed:
    """Reward and cost summaries of one variant's outcomes."""

    reward: MeanSummary
    cost: MeanSummary


@dataclass(frozen=True)
class Verdict:
    """Outcome of a guardrail check: ``stop`` with a human-readable ``reason``."""

    stop: bool
    reason: str = ""
    metric: str = ""
    interval: Difference | None = None


def evaluate_guardrail(config: GuardrailConfig, control: Observed, variant: Observed) -> Verdict:
    """Decide whether ``variant`` must be stopped against ``control`` (see module docs)."""
    if not config.enabled:
        return Verdict(False, "guardrail disabled")
    n = min(control.reward.n, variant.reward.n)
    if n < config.min_samples:
        return Verdict(False, f"waiting for {config.min_samples} outcomes per side (have {n})")
    pct = f"{config.confidence:.0%}"
    if config.max_reward_drop > 0:
        d = difference(variant.reward, control.reward, config.alpha)
        if d.high < -config.max_reward_drop:
            return Verdict(
                True,
                f"guardrail: mean reward {variant.reward.mean:.4g} vs control "
                f"{control.reward.mean:.4g}; difference {d.estimate:+.4g}, {pct} always-valid "
                f"interval [{d.low:.4g}, {d.high:.4g}] lies below -{config.max_reward_drop:g} "
                f"(n={variant.reward.n} vs {control.reward.n})",
                "reward",
                d,
            )
    if config.max_cost_increase > 0 and min(control.cost.n, variant.cost.n) >= config.min_samples:
        ratio = 1.0 + config.max_cost_increase
        d = difference(variant.cost, control.cost, config.alpha, ratio=ratio)
        if d.low > 0:
            return Verdict(
                True,
                f"guardrail: mean cost ${variant.cost.mean:.4g} vs control "
                f"${control.cost.mean:.4g}; cost - {ratio:g} x control = {d.estimate:+.4g}, "
                f"{pct} always-valid interval [{d.low:.4g}, {d.high:.4g}] lies above 0 "
                f"(n={variant.cost.n} vs {control.cost.n})",
                "cost",
                d,
            )
    return Verdict(False, "within guardrails")


class GuardrailChecker(Protocol):
    """What :func:`guardrail_loop` drives (an
    :class:`~banditroute.service.experiments.manager.ExperimentManager`)."""

    def check_all_guardrails(self) -> list[tuple[str, str, str]]:
        """Check every running experiment; ``(experiment, variant, reason)`` per stop."""
        ...


async def guardrail_loop(checker: GuardrailChecker, interval_s: float = 10.0) -> None:
    """Evaluate guardrails of every running experiment every ``interval_s`` seconds, forever
    (cancel the task to stop). Errors are logged and retried at the next tick."""
    while True:
        try:
            for exp, variant, reason in await asyncio.to_thread(checker.check_all_guardrails):
                _log.warning("experiment %s: variant %s stopped: %s", exp, variant, reason)
        except BanditrouteError as exc:
            _log.warning("guardrail check failed: %s", exc)
        except Exception:  # keep the loop alive; the next tick retries
            _log.exception("guardrail check failed")
        await asyncio.sleep(interval_s)
