"""Off-policy evaluation of a candidate policy on logged decisions (``banditroute evaluate``).

Logged events come from

* PostgreSQL: the service's ``decisions`` joined with ``outcomes`` (features are the
  stored little-endian float64 vector, the reward is ``outcomes.reward``; decisions
  without an outcome and not-logged shadow decisions are skipped), in event order; or
* a replay log file, JSONL, one decision per line::

      {"features": [0.1, ...] | "prompt": "...", "model": "gpt-4o", "propensity": 0.9,
       "reward": 0.7, "candidates": ["gpt-4o", "mini"], "categorical_context": {"task": "qa"}}

  (``features`` wins; a ``prompt`` is featurised with the learners' FeatureExtractor of
  ``feature_dim``). ``banditroute replay --decision-log`` writes this format.

The candidate policy (algorithm + hyperparameters) is evaluated with
:func:`banditroute.learners.policy_evaluation.evaluate_policy`: IPS, SNIPS, doubly robust and
the replay method, each with a confidence interval and the number of supporting events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from banditroute.learners.features import context_group
from banditroute.learners.policy_evaluation import LoggedEvent, evaluate_policy
from banditroute.service.replay.dataset import jsonl_lines
from banditroute.service.replay.runner import PolicySpec

__all__ = ["evaluate_candidate", "load_events_from_db", "load_events_from_file"]


def load_events_from_file(path: Path, feature_dim: int = 64) -> list[LoggedEvent]:
    """Read a JSONL replay log (see the module docstring)."""
    extractor: Any = None
    events: list[LoggedEvent] = []
    for number, line in jsonl_lines(path):
        try:
            rec = json.loads(line)
            if "features" in rec:
                x = np.asarray(rec["features"], dtype=np.float64)
            else:
                if extractor is None:
                    from banditroute.learners.features import FeatureExtractor

                    extractor = FeatureExtractor(dim=feature_dim)
                x = extractor.extract(str(rec["prompt"]))
            cands = rec.get("candidates")
            events.append(LoggedEvent(x, str(rec["model"]), float(rec["reward"]),
                                      float(rec["propensity"]),
                                      tuple(cands) if cands else None,
                                      context_group(rec.get("categorical_context"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: bad log record ({exc})") from exc
    return events


def load_events_from_db(url: str, route: str | None = None, tenant: str | None = None,
                        limit: int | None = None) -> list[LoggedEvent]:
    """Decisions with outcomes from the service database, oldest first."""
    from sqlalchemy import create_engine, select

    from banditroute.service.storage.models.decision import Decision
    from banditroute.service.storage.models.outcome import Outcome

    stmt = (
        select(Decision.features, Decision.model, Decision.propensity, Decision.candidates,
               Outcome.reward, Decision.categorical_context)
        .join(Outcome, Outcome.decision_id == Decision.decision_id)
        .where(Decision.logged.is_(True))
        .order_by(Decision.event_id)
    )
    if route is not None:
        stmt = stmt.where(Decision.route == route)
    if tenant is not None:
        stmt = stmt.where(Decision.tenant == tenant)
    if limit is not None:
        stmt = stmt.limit(limit)
    from banditroute.service.config import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    finally:
        engine.dispose()
    return [
        LoggedEvent(np.frombuffer(features, dtype="<f8").astype(np.float64), model, float(reward),
                    float(propensity), tuple(candidates) if candidates else None,
                    context_group(categorical))
        for features, model, propensity, candidates, reward, categorical in rows
    ]


def evaluate_candidate(events: Sequence[LoggedEvent], spec: PolicySpec, seed: int = 0,
                       confidence: float = 0.95, bootstrap: int = 0,
                       learn: bool = True) -> dict[str, Any]:
    """Estimate the value of ``spec`` on ``events``; a JSON-ready dict.

    Also reports the logging policy's own mean reward (the on-policy baseline).
    """
    if not events:
        raise ValueError("events: no logged decisions with outcomes to evaluate")
    dims = {int(np.asarray(e.context).size) for e in events}
    if len(dims) != 1:
        raise ValueError(f"events: feature vectors have different lengths {sorted(dims)}")
    arms: list[str] = []
    for e in events:
        for arm in (e.arm, *(e.candidates or ())):
            if arm not in arms:
                arms.append(arm)
    policy = spec.build(arms, dims.pop(), seed)
    estimates = evaluate_policy(policy, events, learn=learn, seed=seed, confidence=confidence,
                                bootstrap=bootstrap)
    rewards = np.array([e.reward for e in events])
    props = np.array([e.propensity for e in events])
    return {
        "policy": spec.label,
        "algorithm": spec.algorithm,
        "hyperparameters": dict(spec.hyperparameters),
        "events": len(events),
        "arms": arms,
        "logging_policy_mean_reward": float(rewards.mean()),
        "min_logged_propensity": float(props.min()),
        "learn_from_log": learn,
        "confidence": confidence,
        "bootstrap": bootstrap,
        "estimates": {name: est.as_dict() for name, est in estimates.items()},
    }
