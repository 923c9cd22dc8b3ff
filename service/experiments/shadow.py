"""Shadow scoring: policies that see every request and log their choice, never serving it.

The resolver lists, in :attr:`banditroute.service.core.assignment.Assignment.shadows`, the policy
versions that must score a request without serving it: the experiment's shadow variants and (by
default) the other served variants, so that every variant has its probability of every logged
choice and can be evaluated off-policy on *all* the experiment's traffic ("what if 100% went
to variant X"). The Route path calls :func:`score_shadows` after the serving policy chose, and
stores the result in ``decisions.shadow`` (JSONB)::

    {"<policy>@<version>": {"model": "...", "propensity": 0.8,
                            "probabilities": {"model-a": 0.8, "model-b": 0.2}}, ...}

The served model is never changed by a shadow policy: :func:`score_shadows` only reads.

Examples
--------
>>> from banditroute.learners.base import Decision
>>> shadow_entry(Decision("a", 0.75, {"a": 1.0, "b": 0.0}, {"a": 0.75, "b": 0.25}, ["a", "b"]))
{'model': 'a', 'propensity': 0.75, 'probabilities': {'a': 0.75, 'b': 0.25}}
>>> shadow_key("linucb", 3)
'linucb@3'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from banditroute.learners.base import Decision, Policy
from banditroute.service.core.assignment import Assignment, PolicyKey

__all__ = ["score_shadows", "shadow_entry", "shadow_key", "shadow_probability"]

_log = logging.getLogger(__name__)


def shadow_key(policy: str, version: int) -> str:
    """Key of a policy version in ``decisions.shadow``."""
    return f"{policy}@{version}"


def shadow_entry(decision: Decision) -> dict[str, Any]:
    """What a shadow policy would have done: its choice, propensity and distribution."""
    return {
        "model": decision.arm,
        "propensity": float(decision.propensity),
        "probabilities": {k: float(v) for k, v in decision.probabilities.items()},
    }


def score_shadows(
    assignment: Assignment,
    policy_of: Callable[[PolicyKey], Policy | None],
    x: Any,
    candidates: Iterable[str] | None,
    rng: np.random.Generator | None = None,
    group: str | None = None,
) -> dict[str, Any] | None:
    """Score ``x`` with every shadow policy of ``assignment``; ``None`` when there are none.

    Parameters
    ----------
    assignment
        The request's assignment; only its ``shadows`` are used.
    policy_of
        Returns the live policy of a version (the registry), or ``None`` if not loaded.
    x, candidates, rng, group
        As passed to the serving policy's ``select``. A shadow policy that cannot score (not
        loaded, or none of the candidates among its arms) is skipped and logged, never raised:
        shadows must not break serving.
    """
    if not assignment.shadows:
        return None
    cands = list(candidates) if candidates is not None else None
    out: dict[str, Any] = {}
    for key in assignment.shadows:
        policy = policy_of(key)
        if policy is None:
            continue
        usable = cands if cands is None else [c for c in cands if c in policy.arms]
        if usable is not None and not usable:
            continue
        try:
            out[shadow_key(key.name, key.version)] = shadow_entry(
                policy.select(x, usable, rng=rng, group=group))
        except (ValueError, TypeError) as exc:  # a shadow must never fail the request
            _log.warning("shadow policy %s@%s could not score: %s", key.name, key.version, exc)
    return out or None


def shadow_probability(shadow: Mapping[str, Any] | None, key: str, model: str) -> float | None:
    """Probability that the shadow policy ``key`` would have chosen ``model`` (None: unknown).

    Examples
    --------
    >>> s = {"p@1": {"model": "a", "propensity": 0.9, "probabilities": {"a": 0.9, "b": 0.1}}}
    >>> shadow_probability(s, "p@1", "b"), shadow_probability(s, "q@1", "b")
    (0.1, None)
    """
    if not shadow or key not in shadow:
        return None
    probs = shadow[key].get("probabilities") or {}
    return float(probs.get(model, 0.0))
