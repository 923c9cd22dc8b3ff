"""An hourly rollup of decisions and outcomes, kept in memory and advanced along the event log.

Week and month windows over millions of decisions cannot be aggregated from the raw rows in
under a second on a small machine (a month of 1,000,000 decisions joined to their outcomes
takes seconds: ``benchmarks/dashboard.py``). So each process keeps, per hour, tenant, route,
model and policy version, the sums the pages need (:class:`Sums`), and advances them
incrementally:

* decisions and outcomes share one event id sequence whose ids become visible in id order
  (``banditroute.service.storage.models.event_log``), so after applying every event up to id
  ``w`` the next refresh reads only ``event_id > w``: decisions through the index
  ``ix_decisions_event_id``, outcomes through their primary key (``event_id``), each outcome
  joined to its decision by the decisions primary key to find its hour, route and model;
* both reads run in one ``REPEATABLE READ`` transaction, and the new position is the largest id
  they saw, so no event is counted twice or skipped;
* the first build is the same read from id 0, bounded to the last ``keep`` (31 days) by
  ``created_at`` (partition pruning): one scan, done in a background thread on first use while
  the pages answer from the raw rows.

Hours older than ``keep`` are dropped at each refresh. The rollup is a cache: it holds nothing
that is not in the tables, and a restart rebuilds it.

Examples
--------
>>> s = Sums(decisions=2, outcomes=1, reward_sum=0.5, reward_sq=0.25)
>>> s.add(Sums(decisions=1, outcomes=1, reward_sum=1.0, reward_sq=1.0)).decisions
3
>>> round(s.reward.mean, 3)
0.75
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from banditroute.learners.sequential import MeanSummary
from banditroute.service.dashboard import queries as q

__all__ = ["HOUR", "HourlyRollup", "Sums"]

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Sums:
    """Decisions and the sums of their outcomes' reward, cost and latency."""

    decisions: int = 0
    outcomes: int = 0
    reward_sum: float = 0.0
    reward_sq: float = 0.0
    cost_n: int = 0
    cost_sum: float = 0.0
    latency_n: int = 0
    latency_sum: float = 0.0

    def add(self, o: Sums | q.BucketRow) -> Sums:
        """Add ``o`` in place; returns self."""
        self.decisions += o.decisions
        self.outcomes += o.outcomes
        self.reward_sum += o.reward_sum
        self.reward_sq += o.reward_sq
        self.cost_n += o.cost_n
        self.cost_sum += o.cost_sum
        self.latency_n += o.latency_n
        self.latency_sum += o.latency_sum
        return self

    @property
    def reward(self) -> MeanSummary:
        """Count, mean and variance of the outcomes' recorded rewards."""
        return MeanSummary.from_sums(self.outcomes, self.reward_sum, self.reward_sq)


def floor_to(t: datetime, stride: timedelta) -> datetime:
    """Start of ``t``'s bucket of width ``stride``, aligned as ``date_bin(stride, t, epoch)``.

    >>> floor_to(datetime(2026, 11, 30, 13, 59, tzinfo=UTC), timedelta(hours=6)).hour
    12
    """
    return _EPOCH + ((t - _EPOCH) // stride) * stride


class HourlyRollup:
    """Per (hour, tenant, route, model, policy, version): :class:`Sums`; see the module doc.

    Parameters
    ----------
    engine
        The database.
    keep
        How much history to hold (the longest window plus a day).
    clock
        Current time (tests).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        keep: timedelta = timedelta(days=31),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.keep = keep
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cells: dict[q.CellKey, Sums] = {}
        self._position: int | None = None  # None: not built yet
        self._lock = threading.Lock()
        self._building: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """True once the first build finished."""
        return self._position is not None

    @property
    def position(self) -> int:
        """Every event up to this id is in the rollup (0 before the first build)."""
        return self._position or 0

    def start_building(self) -> None:
        """Build in a background thread (once); pages use the raw rows until :attr:`ready`."""
        with self._lock:
            if self._building is not None or self.ready:
                return
            self._building = threading.Thread(
                target=self._build_quietly, name="dashboard-rollup", daemon=True
            )
            self._building.start()

    def _build_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:
            log.warning("dashboard: building the hourly rollup failed", exc_info=True)
        finally:
            with self._lock:
                self._building = None

    def refresh(self) -> None:
        """Apply every event committed since the last refresh (the first call builds)."""
        with self._lock:
            now = self._clock()
            floor = floor_to(now - self.keep, HOUR)
            after = self._position or 0
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    decisions, d_max = q.decisions_after(conn, after, floor)
                    outcomes, o_max = q.outcomes_after(conn, after, floor)
            for key, n in decisions:
                self._cells.setdefault(key, Sums()).decisions += n
            for key, row in outcomes:
                self._cells.setdefault(key, Sums()).add(row)
            self._position = max(after, d_max, o_max)
            for key in [k for k in self._cells if k[0] < floor]:
                del self._cells[key]

    def rows(
        self,
        since: datetime,
        stride: timedelta,
        *,
        tenant: str | None = None,
        route: str | None = None,
    ) -> list[q.BucketRow]:
        """The rollup as :class:`~banditroute.service.dashboard.queries.BucketRow` per bucket of
        ``stride`` (a multiple of an hour) from ``since`` (an hour boundary)."""
        merged: dict[q.CellKey, Sums] = {}
        with self._lock:
            for key, s in self._cells.items():
                hour, t, r = key[0], key[1], key[2]
                if hour < since or (tenant is not None and t != tenant):
                    continue
                if route is not None and r != route:
                    continue
                bucket = (floor_to(hour, stride), *key[1:])
                merged.setdefault(bucket, Sums()).add(s)
        return [
            q.BucketRow(
                bucket=k[0],
                tenant=k[1],
                route=k[2],
                model=k[3],
                policy=k[4],
                policy_version=k[5],
                decisions=s.decisions,
                outcomes=s.outcomes,
                reward_sum=s.reward_sum,
                reward_sq=s.reward_sq,
                cost_n=s.cost_n,
                cost_sum=s.cost_sum,
                latency_n=s.latency_n,
                latency_sum=s.latency_sum,
            )
            for k, s in sorted(merged.items())
        ]
