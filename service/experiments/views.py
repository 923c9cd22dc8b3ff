"""Read models of experiments: what the manager, the statistics and the Admin API hand around.

:class:`ExperimentView` and :class:`VariantView` are an experiment as stored, detached from the
database session (:func:`experiment_view` reads one); :class:`ExperimentStatusView` and
:class:`VariantStatusView` add the live statistics of
:func:`banditroute.service.experiments.stats.experiment_status`.

Examples
--------
>>> from banditroute.service.experiments.guardrails import GuardrailConfig
>>> view = ExperimentView("e1", "", "default", "running", "e1",
...     (VariantView("control", "lin", 1, 50.0, False, True),
...      VariantView("treatment", "ts", 1, 50.0, False, False)), GuardrailConfig(), None)
>>> view.control.name, view.variant("treatment").policy
('control', 'ts')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from banditroute.learners.evaluation import Estimate
from banditroute.learners.sequential import Difference, Interval
from banditroute.service.errors import NotFound
from banditroute.service.experiments.assignment import Allocation
from banditroute.service.experiments.guardrails import GuardrailConfig
from banditroute.service.storage.models.base import row_view
from banditroute.service.storage.models.experiment import Experiment
from banditroute.service.storage.models.experiment_event import ExperimentEvent
from banditroute.service.storage.models.experiment_variant import ExperimentVariant

__all__ = [
    "ExperimentStatusView",
    "ExperimentView",
    "RouteBudgetView",
    "VariantStatusView",
    "VariantView",
    "experiment_view",
    "stored_variants",
]


@dataclass(frozen=True)
class VariantView:
    """A variant as stored (``policy_version`` resolved, never 0)."""

    name: str
    policy: str
    policy_version: int
    weight: float
    shadow: bool
    control: bool
    stopped: bool = False
    stop_reason: str = ""


@dataclass(frozen=True)
class ExperimentView:
    """An experiment with its variants, detached from the database session."""

    name: str
    tenant: str
    route: str
    state: str
    salt: str
    variants: tuple[VariantView, ...]
    guardrail: GuardrailConfig
    allocation: Allocation | None
    stop_reason: str = ""
    promoted_variant: str = ""
    previous_policy: tuple[str, int] | None = None
    created_at: datetime | None = None
    events: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    def variant(self, name: str) -> VariantView:
        """The variant called ``name`` (``NotFound`` otherwise)."""
        for v in self.variants:
            if v.name == name:
                return v
        raise NotFound(f"experiment {self.name!r} has no variant {name!r}")

    @property
    def control(self) -> VariantView | None:
        """The control variant, if any."""
        return next((v for v in self.variants if v.control), None)


@dataclass(frozen=True)
class VariantStatusView:
    """Numbers of one variant (NaN where not defined, e.g. a shadow variant's served reward)."""

    variant: VariantView
    decisions: int
    outcomes: int
    reward: Interval
    quality: Interval
    cost_usd: Interval
    latency_p50_ms: float
    latency_p95_ms: float
    reward_diff_vs_control: Difference | None
    ips: Estimate | None
    snips: Estimate | None
    dr: Estimate | None
    #: Money (issue #12): the sum of the outcomes' ``cost_usd`` (NaN for a shadow variant),
    #: that over the outcomes, and with a period budget the spend of the decisions made in the
    #: current period and its share of the budget (NaN otherwise).
    spend_usd: float = math.nan
    spend_per_request_usd: float = math.nan
    period_spend_usd: float = math.nan
    budget_share: float = math.nan


@dataclass(frozen=True)
class RouteBudgetView:
    """The budget of the experiment's route, which its variants share (one controller per
    route, :mod:`banditroute.service.core.budgets`); ``period_start``/``period_end``: the
    current period's UTC bounds when there is a budget per period."""

    budget_per_request_usd: float | None
    budget_usd: float | None
    period: str | None
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True)
class ExperimentStatusView:
    """An experiment with per-variant statistics and the description of the method."""

    experiment: ExperimentView
    variants: tuple[VariantStatusView, ...]
    method: str
    budget: RouteBudgetView | None = None


def stored_variants(session: Session, exp: Experiment) -> list[ExperimentVariant]:
    """The experiment's variant rows in their order."""
    return list(
        session.scalars(
            select(ExperimentVariant)
            .where(ExperimentVariant.experiment_id == exp.id)
            .order_by(ExperimentVariant.position)
        )
    )


def _events(session: Session, exp: Experiment) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "id": e.id,
            "action": e.action,
            "actor": e.actor,
            "at": e.created_at.isoformat(),
            "detail": e.detail,
        }
        for e in session.scalars(
            select(ExperimentEvent)
            .where(ExperimentEvent.experiment_id == exp.id)
            .order_by(ExperimentEvent.id)
        )
    )


def experiment_view(session: Session, exp: Experiment, *, events: bool = False) -> ExperimentView:
    """The view of a stored experiment (with its audit log when ``events``)."""
    variants = tuple(
        row_view(VariantView, v, policy=v.policy_name) for v in stored_variants(session, exp)
    )
    prev = (
        (exp.previous_policy_name, exp.previous_policy_version or 0)
        if exp.previous_policy_name is not None
        else None
    )
    return row_view(
        ExperimentView,
        exp,
        variants=variants,
        guardrail=GuardrailConfig.from_json(exp.guardrail),
        allocation=Allocation.from_json(exp.allocation) if exp.allocation else None,
        previous_policy=prev,
        events=_events(session, exp) if events else (),
    )
