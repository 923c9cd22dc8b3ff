"""Experiment lifecycle on PostgreSQL: create, ramp, start/pause/stop, promote, roll back.

Every change runs in one transaction that locks the experiment row, writes an audited
``experiment_events`` row (who, when, what) and records the change as every configuration change
is recorded (:func:`~banditroute.service.storage.repositories.record_change`: a ``config_changes``
row and a NOTIFY of its id), so every process's
:class:`~banditroute.service.experiments.resolver.ExperimentCache` reloads; the call returns only
after the commit.

Lifecycle::

    draft --start--> running <--pause/resume--> paused
      \\                 \\                          /
       `-----------------`--> stopped <-----------'   (stop, promote, rollback, guardrail)

- **promote**: the route's policy becomes the variant's exact policy version. The variant's
  learned state lives in the policy registry under that ``(policy, version)`` key (every process
  follows the event log), so the route continues from it: no cold start.
- **rollback**: the route's policy goes back to what it was when the experiment started
  (also after a promotion), and the experiment stops.
- **guardrails** (:meth:`ExperimentManager.check_guardrails`): a variant that is worse than
  control stops; its buckets go to control, and the reason is stored on the variant and in the
  audit log.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from banditroute.service.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from banditroute.service.experiments.assignment import (
    Allocation,
    VariantSpec,
    initial_allocation,
    moved_buckets,
    rebalance,
    validate_variants,
    validate_weights,
)
from banditroute.service.experiments.guardrails import GuardrailConfig, evaluate_guardrail
from banditroute.service.experiments.stats import observed_by_variant
from banditroute.service.experiments.views import (
    ExperimentView,
    experiment_view,
    stored_variants,
)
from banditroute.service.storage.models import Policy, Route
from banditroute.service.storage.models.experiment import (
    ACTIVE_STATES,
    EXPERIMENT_STATES,
    Experiment,
)
from banditroute.service.storage.models.experiment_event import ExperimentEvent
from banditroute.service.storage.models.experiment_variant import ExperimentVariant
from banditroute.service.storage.repositories import record_change

__all__ = ["ExperimentManager"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_TRANSITIONS: dict[str, set[str]] = {
    "draft": {"running", "stopped"},
    "running": {"paused", "stopped"},
    "paused": {"running", "stopped"},
    "stopped": set(),
}


class ExperimentManager:
    """Experiments stored in PostgreSQL; every method is one transaction (sync, thread-safe).

    Parameters
    ----------
    engine
        A SQLAlchemy engine on the banditroute database (psycopg 3).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ helpers
    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _load(self, s: Session, name: str, *, lock: bool = False) -> Experiment:
        if not name:
            raise InvalidArgument("experiment name is required")
        q = select(Experiment).where(Experiment.name == name)
        if lock:
            q = q.with_for_update()
        exp = s.scalars(q).first()
        if exp is None:
            raise NotFound(f"experiment {name!r} not found")
        return exp

    def _audit(
        self, s: Session, exp: Experiment, action: str, actor: str, detail: dict[str, Any]
    ) -> None:
        s.add(ExperimentEvent(experiment_id=exp.id, action=action, actor=actor, detail=detail))
        record_change(s, "experiment", exp.name, action, detail, actor)

    def _commit(self, s: Session) -> None:
        try:
            s.commit()
        except IntegrityError as exc:
            s.rollback()
            raise FailedPrecondition(f"conflicting concurrent change: {exc.orig}") from exc
        except OperationalError as exc:
            s.rollback()
            raise Unavailable("database unavailable; nothing was written") from exc

    def _route(self, s: Session, tenant: str, route: str) -> Route:
        r = s.get(Route, (tenant, route))
        if r is None:
            raise NotFound(f"route {route!r} of tenant {tenant!r} not found")
        return r

    def _resolve_policy(self, s: Session, name: str, version: int, variant: str) -> int:
        q = select(func.max(Policy.version)).where(Policy.name == name)
        if version:
            q = q.where(Policy.version == version)
        found = s.scalar(q)
        if found is None:
            what = f"{name!r} version {version}" if version else f"{name!r}"
            raise InvalidArgument(f"variant {variant!r}: unknown policy {what}")
        return int(found)

    @staticmethod
    def _served_weights(variants: Sequence[ExperimentVariant]) -> dict[str, float]:
        return {v.name: v.weight for v in variants if not v.shadow}

    def _start(self, s: Session, exp: Experiment) -> None:
        other = s.scalars(
            select(Experiment.name).where(
                Experiment.tenant == exp.tenant,
                Experiment.route == exp.route,
                Experiment.state.in_(ACTIVE_STATES),
                Experiment.id != exp.id,
            )
        ).first()
        if other is not None:
            raise FailedPrecondition(
                f"route {exp.route!r} already has an active experiment {other!r}; stop it first"
            )
        route = self._route(s, exp.tenant, exp.route)
        exp.previous_policy_name = route.policy_name
        exp.previous_policy_version = route.policy_version
        exp.started_at = datetime.now(UTC)
        exp.state = "running"

    # ------------------------------------------------------------------ commands
    def create(
        self,
        name: str,
        tenant: str,
        route: str,
        variants: Sequence[VariantSpec],
        guardrail: GuardrailConfig | None = None,
        *,
        salt: str = "",
        start: bool = False,
        actor: str = "",
    ) -> ExperimentView:
        """Create an experiment (in draft, or running with ``start``).

        Raises ``InvalidArgument`` (name, variants, weights, unknown policy), ``NotFound``
        (route), ``AlreadyExists`` (name taken), ``FailedPrecondition`` (``start`` while the
        route has another active experiment).
        """
        if not _NAME.match(name or ""):
            raise InvalidArgument(
                f"experiment name {name!r} must be 1-128 letters, digits, '_', '.', '-'"
            )
        if not route:
            raise InvalidArgument("route is required")
        validate_variants(variants)
        guardrail = guardrail or GuardrailConfig()
        if guardrail.enabled and not any(v.control for v in variants):
            raise InvalidArgument("guardrails compare against control: mark one variant control")
        with self._session() as s:
            self._route(s, tenant, route)
            if s.scalar(select(Experiment.id).where(Experiment.name == name)) is not None:
                raise AlreadyExists(f"experiment {name!r} already exists")
            versions = [
                self._resolve_policy(s, v.policy, v.policy_version, v.name) for v in variants
            ]
            served = {v.name: float(v.weight) for v in variants if not v.shadow}
            exp = Experiment(
                name=name,
                tenant=tenant,
                route=route,
                state="draft",
                salt=salt or name,
                guardrail=guardrail.to_json(),
                allocation=initial_allocation(served).to_json(),
            )
            s.add(exp)
            try:
                s.flush()
            except IntegrityError as exc:
                s.rollback()
                raise AlreadyExists(f"experiment {name!r} already exists") from exc
            for pos, (v, version) in enumerate(zip(variants, versions, strict=True)):
                s.add(
                    ExperimentVariant(
                        experiment_id=exp.id,
                        name=v.name,
                        position=pos,
                        policy_name=v.policy,
                        policy_version=version,
                        weight=float(v.weight),
                        shadow=v.shadow,
                        control=v.control,
                    )
                )
            detail = {
                "route": route,
                "tenant": tenant,
                "salt": exp.salt,
                "variants": [
                    {
                        "name": v.name,
                        "policy": v.policy,
                        "policy_version": ver,
                        "weight": v.weight,
                        "shadow": v.shadow,
                        "control": v.control,
                    }
                    for v, ver in zip(variants, versions, strict=True)
                ],
                "guardrail": guardrail.to_json(),
            }
            self._audit(s, exp, "create", actor, detail)
            if start:
                self._start(s, exp)
                self._audit(s, exp, "start", actor, {})
            self._commit(s)
            return experiment_view(s, exp)

    def ramp(self, name: str, weights: Mapping[str, float], *, actor: str = "") -> ExperimentView:
        """Change served variants' weights; unlisted variants keep theirs. Only buckets whose
        owner must change move (:func:`~banditroute.service.experiments.assignment.rebalance`)."""
        if not weights:
            raise InvalidArgument("weights: give at least one variant's new weight")
        with self._session() as s:
            exp = self._load(s, name, lock=True)
            if exp.state == "stopped":
                raise FailedPrecondition(f"experiment {name!r} is stopped")
            variants = stored_variants(s, exp)
            by_name = {v.name: v for v in variants}
            for vname, w in weights.items():
                v = by_name.get(vname)
                if v is None:
                    raise InvalidArgument(f"experiment {name!r} has no variant {vname!r}")
                if not isinstance(w, int | float) or not math.isfinite(w):
                    raise InvalidArgument(f"variant {vname!r}: weight must be finite")
                if v.shadow and w != 0:
                    raise InvalidArgument(f"variant {vname!r} is a shadow: its weight must be 0")
                if v.stopped and w != 0:
                    raise FailedPrecondition(
                        f"variant {vname!r} was stopped ({v.stop_reason}); it cannot get traffic"
                    )
            before = self._served_weights(variants)
            after = {**before, **{k: float(w) for k, w in weights.items()}}
            validate_weights(after)
            old_alloc = Allocation.from_json(exp.allocation)
            new_alloc = rebalance(old_alloc, after)
            for v in variants:
                if v.name in weights:
                    v.weight = float(weights[v.name])
            exp.allocation = new_alloc.to_json()
            self._audit(
                s,
                exp,
                "ramp",
                actor,
                {
                    "before": before,
                    "after": after,
                    "moved_fraction": moved_buckets(old_alloc, new_alloc) / 10_000,
                },
            )
            self._commit(s)
            return experiment_view(s, exp)

    def set_state(
        self, name: str, state: str, *, actor: str = "", reason: str = ""
    ) -> ExperimentView:
        """Move along the lifecycle; the same state again is a no-op."""
        if state not in EXPERIMENT_STATES:
            raise InvalidArgument(f"state must be one of {', '.join(EXPERIMENT_STATES)}")
        with self._session() as s:
            exp = self._load(s, name, lock=True)
            if exp.state == state:
                return experiment_view(s, exp)
            if state not in _TRANSITIONS[exp.state]:
                raise FailedPrecondition(
                    f"experiment {name!r} is {exp.state}; it cannot become {state}"
                )
            old = exp.state
            if state == "running" and old == "draft":
                self._start(s, exp)
                action = "start"
            elif state == "running":
                action = "resume"
                exp.state = "running"
            elif state == "paused":
                action = "pause"
                exp.state = "paused"
            else:
                action = "stop"
                exp.state = "stopped"
                exp.stopped_at = datetime.now(UTC)
                exp.stop_reason = reason or f"stopped by {actor or 'an admin'}"
            self._audit(s, exp, action, actor, {"from": old, "to": state, "reason": reason})
            self._commit(s)
            return experiment_view(s, exp)

    def promote(self, name: str, variant: str, *, actor: str = "") -> ExperimentView:
        """Point the route at the variant's policy version (warm) and stop the experiment."""
        if not variant:
            raise InvalidArgument("variant is required")
        with self._session() as s:
            exp = self._load(s, name, lock=True)
            if exp.state == "stopped":
                raise FailedPrecondition(f"experiment {name!r} is stopped ({exp.stop_reason})")
            v = next((x for x in stored_variants(s, exp) if x.name == variant), None)
            if v is None:
                raise NotFound(f"experiment {name!r} has no variant {variant!r}")
            if v.stopped:
                raise FailedPrecondition(f"variant {variant!r} was stopped: {v.stop_reason}")
            route = self._route(s, exp.tenant, exp.route)
            if exp.previous_policy_name is None:
                exp.previous_policy_name = route.policy_name
                exp.previous_policy_version = route.policy_version
            before = {"policy": route.policy_name, "policy_version": route.policy_version}
            route.policy_name = v.policy_name
            route.policy_version = v.policy_version
            route.updated_at = datetime.now(UTC)
            exp.state = "stopped"
            exp.stopped_at = datetime.now(UTC)
            exp.promoted_variant = variant
            exp.stop_reason = f"promoted variant {variant!r} ({v.policy_name}@{v.policy_version})"
            after = {"policy": v.policy_name, "policy_version": v.policy_version}
            record_change(
                s,
                "route",
                f"{exp.tenant}/{exp.route}",
                "promote",
                {"experiment": name, "before": before, "after": after},
                actor,
            )
            self._audit(
                s,
                exp,
                "promote",
                actor,
                {"variant": variant, "route_before": before, "route_after": after},
            )
            self._commit(s)
            return experiment_view(s, exp)

    def rollback(self, name: str, *, actor: str = "", reason: str = "") -> ExperimentView:
        """Stop the experiment and restore the route's policy from before it started."""
        with self._session() as s:
            exp = self._load(s, name, lock=True)
            rolled_back = s.scalar(
                select(func.count())
                .select_from(ExperimentEvent)
                .where(
                    ExperimentEvent.experiment_id == exp.id, ExperimentEvent.action == "rollback"
                )
            )
            if exp.state == "stopped" and (not exp.promoted_variant or rolled_back):
                raise FailedPrecondition(
                    f"experiment {name!r} is stopped ({exp.stop_reason}); nothing to roll back"
                )
            detail: dict[str, Any] = {"reason": reason, "from": exp.state}
            if exp.previous_policy_name is not None:
                route = self._route(s, exp.tenant, exp.route)
                before = {"policy": route.policy_name, "policy_version": route.policy_version}
                route.policy_name = exp.previous_policy_name
                route.policy_version = exp.previous_policy_version or 0
                route.updated_at = datetime.now(UTC)
                after = {"policy": route.policy_name, "policy_version": route.policy_version}
                detail.update(route_before=before, route_after=after)
                record_change(
                    s,
                    "route",
                    f"{exp.tenant}/{exp.route}",
                    "rollback",
                    {"experiment": name, "before": before, "after": after},
                    actor,
                )
            if exp.state != "stopped":
                exp.stopped_at = datetime.now(UTC)
            exp.state = "stopped"
            exp.stop_reason = "rolled back" + (f": {reason}" if reason else "")
            self._audit(s, exp, "rollback", actor, detail)
            self._commit(s)
            return experiment_view(s, exp)

    def stop_variant(self, name: str, variant: str, reason: str, *, actor: str) -> bool:
        """Stop one served variant (guardrail): its buckets go to control. False if it was
        already stopped or the experiment is not active."""
        with self._session() as s:
            exp = self._load(s, name, lock=True)
            if exp.state not in ACTIVE_STATES:
                return False
            variants = stored_variants(s, exp)
            v = next((x for x in variants if x.name == variant), None)
            control = next((x for x in variants if x.control), None)
            if v is None or v.stopped or v.control or control is None:
                return False
            before = self._served_weights(variants)
            control.weight += v.weight
            v.weight = 0.0
            v.stopped = True
            v.stop_reason = reason
            after = self._served_weights(variants)
            exp.allocation = rebalance(Allocation.from_json(exp.allocation), after).to_json()
            self._audit(
                s,
                exp,
                "guardrail_stop",
                actor,
                {"variant": variant, "reason": reason, "before": before, "after": after},
            )
            self._commit(s)
            return True

    # ------------------------------------------------------------------ queries
    def get(self, name: str, *, events: bool = False) -> ExperimentView:
        """One experiment (``NotFound`` if unknown)."""
        with self._session() as s:
            return experiment_view(s, self._load(s, name), events=events)

    def list_experiments(
        self, *, tenant: str | None = None, route: str = ""
    ) -> list[ExperimentView]:
        """Experiments, newest first, optionally of one tenant and/or route."""
        with self._session() as s:
            q = select(Experiment).order_by(Experiment.id.desc())
            if tenant is not None:
                q = q.where(Experiment.tenant == tenant)
            if route:
                q = q.where(Experiment.route == route)
            return [experiment_view(s, e) for e in s.scalars(q)]

    def running(self) -> list[ExperimentView]:
        """Experiments in state ``running`` (what the resolver serves)."""
        with self._session() as s:
            q = select(Experiment).where(Experiment.state == "running")
            return [experiment_view(s, e) for e in s.scalars(q)]

    def check_guardrails(self, name: str, *, actor: str = "guardrail") -> list[tuple[str, str]]:
        """Evaluate the guardrail of an active experiment now; stop every variant that fails.

        Returns ``(variant, reason)`` for each variant stopped by this call.
        """
        view = self.get(name)
        control = view.control
        if view.state not in ACTIVE_STATES or control is None or not view.guardrail.enabled:
            return []
        observed = observed_by_variant(self.engine, view)
        base = observed.get(control.name)
        if base is None:
            return []
        stopped: list[tuple[str, str]] = []
        for v in view.variants:
            if v.control or v.shadow or v.stopped or v.name not in observed:
                continue
            verdict = evaluate_guardrail(view.guardrail, base, observed[v.name])
            if verdict.stop and self.stop_variant(view.name, v.name, verdict.reason, actor=actor):
                stopped.append((v.name, verdict.reason))
        return stopped

    def check_all_guardrails(self) -> list[tuple[str, str, str]]:
        """:meth:`check_guardrails` for every running experiment with guardrails on."""
        out: list[tuple[str, str, str]] = []
        for view in self.running():
            if view.guardrail.enabled:
                out.extend((view.name, v, r) for v, r in self.check_guardrails(view.name))
        return out
