"""Reward shaping: one number per routed request from quality, feedback, cost and latency.

The merge rule (:func:`merge_quality`):

1. an errored request has quality 0;
2. otherwise the outcome's ``quality`` score if given, else ``success`` as 1.0/0.0;
3. when human ``feedback`` is present: ``(1 - w) * quality + w * feedback`` with
   ``w = feedback_weight``, or ``feedback`` alone when there is no quality at all.

The reward (:func:`compute_reward`) is then
``clip(quality - cost_weight * cost_usd - latency_weight * latency_s, reward_min, reward_max)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from banditroute.learners._validation import check_bool, check_float

__all__ = ["RewardWeights", "compute_reward", "merge_quality"]


@dataclass(frozen=True, slots=True)
class RewardWeights:
    """How a policy turns outcomes into a reward.

    Parameters
    ----------
    cost_weight
        Reward lost per US dollar spent (>= 0).
    latency_weight
        Reward lost per second of latency (>= 0).
    feedback_weight
        Weight ``w`` of human feedback when both it and a quality score exist, in ``[0, 1]``.
    reward_min, reward_max
        The reward is clipped to ``[reward_min, reward_max]`` (``reward_min < reward_max``).

    Examples
    --------
    >>> RewardWeights(cost_weight=10.0).cost_weight
    10.0
    >>> RewardWeights(feedback_weight=2.0)
    Traceback (most recent call last):
    ...
    ValueError: feedback_weight must be <= 1.0, got 2.0
    """

    cost_weight: float = 0.0
    latency_weight: float = 0.0
    feedback_weight: float = 0.5
    reward_min: float = -1.0
    reward_max: float = 1.0

    def __post_init__(self) -> None:
        for name, low, high in (
            ("cost_weight", 0.0, None),
            ("latency_weight", 0.0, None),
            ("feedback_weight", 0.0, 1.0),
            ("reward_min", None, None),
            ("reward_max", None, None),
        ):
            object.__setattr__(
                self, name, check_float(name, getattr(self, name), low=low, high=high)
            )
        if not self.reward_min < self.reward_max:
            raise ValueError(
                f"reward_min must be < reward_max, got {self.reward_min} >= {self.reward_max}"
            )


def merge_quality(
    quality: float | None = None,
    success: bool | None = None,
    error: bool = False,
    feedback: float | None = None,
    *,
    feedback_weight: float = 0.5,
) -> float | None:
    """Merge an outcome's quality/success/error and human feedback into one quality value.

    Returns ``None`` when nothing is known (no quality, success or feedback and no error).

    Examples
    --------
    >>> merge_quality(quality=0.8)
    0.8
    >>> merge_quality(success=True, feedback=0.0)
    0.5
    >>> merge_quality(quality=0.9, error=True)
    0.0
    >>> merge_quality(feedback=1.0)
    1.0
    >>> merge_quality() is None
    True
    """
    w = check_float("feedback_weight", feedback_weight, low=0.0, high=1.0)
    base: float | None
    if check_bool("error", error):
        base = 0.0
    elif quality is not None:
        base = check_float("quality", quality)
    elif success is not None:
        base = 1.0 if check_bool("success", success) else 0.0
    else:
        base = None
    if feedback is None:
        return base
    fb = check_float("feedback", feedback)
    if base is None:
        return fb
    return (1.0 - w) * base + w * fb


def compute_reward(
    weights: RewardWeights,
    *,
    quality: float | None = None,
    success: bool | None = None,
    error: bool = False,
    cost_usd: float = 0.0,
    latency_ms: float | None = None,
    feedback: float | None = None,
) -> float:
    """The clipped reward of one request (see the module docstring).

    With no quality information at all the quality counts as 0.

    Examples
    --------
    >>> w = RewardWeights(cost_weight=100.0, latency_weight=0.1)
    >>> round(compute_reward(w, quality=0.9, cost_usd=0.002, latency_ms=1500.0), 6)
    0.55
    >>> compute_reward(w, error=True, cost_usd=0.05)
    -1.0
    """
    if not isinstance(weights, RewardWeights):
        raise TypeError(f"weights must be RewardWeights, got {type(weights).__name__}")
    q = merge_quality(quality, success, error, feedback, feedback_weight=weights.feedback_weight)
    cost = check_float("cost_usd", cost_usd, low=0.0)
    latency_s = 0.0 if latency_ms is None else check_float("latency_ms", latency_ms, low=0.0) / 1e3
    quality_value = 0.0 if q is None else q
    raw = quality_value - weights.cost_weight * cost - weights.latency_weight * latency_s
    return min(max(raw, weights.reward_min), weights.reward_max)
