"""A route's money budget as configured: the four route fields, checked once.

``check_budget`` is the one validation of budget input (Admin ``PutRoute``, the CLI and the
config cache all go through it): a negative, non-finite or unknown value or period is
:class:`~banditroute.service.errors.InvalidArgument` naming the field.

Examples
--------
>>> check_budget(RouteBudget(budget_per_request_usd=0.002)).budget_per_request_usd
0.002
>>> check_budget(RouteBudget()) is None
True
>>> check_budget(RouteBudget(budget_usd=5.0, budget_period="week"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
banditroute.service.errors.InvalidArgument: budget_period must be one of 'hour', ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from banditroute.learners.pacing import PERIODS, BudgetPacer
from banditroute.service.errors import InvalidArgument

__all__ = ["PACING_STEP", "RouteBudget", "check_budget"]

#: The initial dual step of every route's pacer, which decays to 0.002 (see
#: :class:`~banditroute.learners.pacing.BudgetPacer`); one constant, so every process builds
#: the same controller.
PACING_STEP = 0.02


@dataclass(frozen=True, slots=True)
class RouteBudget:
    """A route's budget fields (None / "" / False = unset)."""

    budget_per_request_usd: float | None = None
    budget_usd: float | None = None
    budget_period: str | None = None
    budget_hard_cap: bool = False

    @classmethod
    def of(cls, row: Any) -> RouteBudget | None:
        """The budget of a ``routes`` row (None when it has none)."""
        budget = cls(row.budget_per_request_usd, row.budget_usd, row.budget_period or None,
                     bool(row.budget_hard_cap))
        return None if budget == cls() else budget

    def describe(self) -> str:
        """The budget in words, as the CLI and the dashboard show it.

        >>> RouteBudget(0.0015, 5.0, "day", True).describe()
        '$0.0015/request and $5/day (hard cap)'
        """
        parts = []
        if self.budget_per_request_usd is not None:
            parts.append(f"${self.budget_per_request_usd:g}/request")
        if self.budget_usd is not None:
            parts.append(f"${self.budget_usd:g}/{self.budget_period}"
                         + (" (hard cap)" if self.budget_hard_cap else ""))
        return " and ".join(parts)

    def pacer(self) -> BudgetPacer:
        """A fresh controller for this budget."""
        return BudgetPacer(budget_per_request_usd=self.budget_per_request_usd,
                           budget_usd=self.budget_usd, period=self.budget_period,
                           hard_cap=self.budget_hard_cap, step=PACING_STEP)


def _money(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name} must be a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        raise InvalidArgument(f"{name} must be a finite amount > 0 USD, got {out!r}")
    return out


def check_budget(budget: RouteBudget | None) -> RouteBudget | None:
    """``budget`` checked (None when nothing is set); raises ``InvalidArgument``."""
    if budget is None:
        return None
    per_request = _money("budget_per_request_usd", budget.budget_per_request_usd)
    amount = _money("budget_usd", budget.budget_usd)
    period = budget.budget_period or None
    if period is not None and period not in PERIODS:
        valid = ", ".join(repr(p) for p in PERIODS)
        raise InvalidArgument(f"budget_period must be one of {valid}, got {period[:32]!r}")
    if (amount is None) != (period is None):
        raise InvalidArgument("budget_usd and budget_period must be set together")
    if budget.budget_hard_cap and amount is None:
        raise InvalidArgument("budget_hard_cap needs budget_usd and budget_period")
    out = RouteBudget(per_request, amount, period, bool(budget.budget_hard_cap))
    return None if out == RouteBudget() else out
