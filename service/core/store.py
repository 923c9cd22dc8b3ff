"""Database side of the core: decision/outcome/feedback writes and the reads they need.

:class:`SqlStore` implements :class:`~banditroute.service.core.router.DecisionStore` and
:class:`~banditroute.service.core.outcomes.OutcomeStore`. Writes go through the group-commit writer
(:class:`banditroute.service.storage.writer.GroupCommitWriter`: many rows per transaction, event ids
allocated from the event-log sequence, NOTIFY after commit); each call returns only after its
rows committed, except :meth:`SqlStore.submit_decision`, which queues a decision and returns the
future of its commit (Route's default: see :mod:`banditroute.service.core.decision_buffer`).

A decision Route answered before it committed may be looked up by an outcome right away, in
this process or in another one. :meth:`SqlStore.load_decisions` therefore first waits for the
decisions this process's writer still holds (:meth:`GroupCommitWriter.settle`), and then, for an
id not found whose UUIDv7 timestamp is younger than ``decision_wait_s`` (another process may not
have committed it yet), reads again every few milliseconds until it appears or is that old.

Reads run in a worker thread on the SQLAlchemy engine. Database failures become
:class:`~banditroute.service.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.outcomes import StoredDecision
from banditroute.service.deadline import check_deadline
from banditroute.service.errors import BanditrouteError, Unavailable
from banditroute.service.storage.row_checks import WriteResult
from banditroute.service.storage.rows import DECISION_COLUMNS, OUTCOME_COLUMNS

__all__ = ["EventWriter", "SqlStore"]

#: Decision columns a replayed Route answers from (``RouterCore._from_row``) and compares the
#: retried request with (``router._check_same_request``).
_REPLAY_COLUMNS = (
    "decision_id",
    "created_at",
    "route",
    "unit_id",
    "prompt_hash",
    "numeric_context",
    "categorical_context",
    "model",
    "propensity",
    "candidates",
    "scores",
    "probabilities",
    "estimated_cost_usd",
    "policy_name",
    "policy_version",
    "experiment",
    "variant",
)
assert set(_REPLAY_COLUMNS) <= set(DECISION_COLUMNS)
_FIND_REQUEST_SQL = text(
    f"SELECT {', '.join(f'd.{c}' for c in _REPLAY_COLUMNS)} FROM request_ids r"
    " JOIN decisions d ON d.decision_id = r.decision_id"
    " WHERE r.tenant = :tenant AND r.request_id = :request_id"
)
#: Fields of a stored outcome as outcome handling compares and answers them.
_OUTCOME_FIELDS = (*OUTCOME_COLUMNS, "reward")
_DECISIONS_SQL = text(
    f"""
    SELECT d.decision_id, d.created_at, d.tenant, d.model, d.policy_name, d.policy_version,
           d.estimated_cost_usd, d.route, d.variant, o.event_id AS o_event_id,
           {", ".join(f"o.{c}" for c in _OUTCOME_FIELDS)},
           (SELECT json_agg(json_build_object(
                       'event_id', f.event_id, 'feedback_key', f.feedback_key,
                       'rating', f.rating, 'comment', f.comment))
              FROM feedback f WHERE f.decision_id = d.decision_id) AS feedback
      FROM decisions d
      LEFT JOIN outcomes o ON o.decision_id = d.decision_id
     WHERE d.decision_id = ANY(:ids) AND d.created_at = ANY(:ts)
    """
)


class EventWriter(Protocol):
    """The group-commit writer as the core uses it."""

    async def write_decision(self, row: Mapping[str, Any]) -> int | None:
        """Insert a decision (a :class:`~banditroute.service.storage.rows.DecisionRow` or a
        mapping of its columns) and its request id; event id, or None on a request-id clash."""
        ...

    def submit_decision(self, row: Mapping[str, Any]) -> asyncio.Future[int | None]:
        """Queue a decision; the future of :meth:`write_decision`'s result."""
        ...

    async def settle(self, decision_ids: Iterable[uuid.UUID], timeout_s: float) -> None:
        """Wait until those of ``decision_ids`` still queued here are committed or failed."""
        ...

    async def write_outcomes(self, rows: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """Insert outcomes (re-checked in the write transaction); one result per row."""
        ...

    async def write_feedback(self, row: dict[str, Any]) -> WriteResult:
        """Insert feedback (re-checked in the write transaction)."""
        ...


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(f"database unavailable: {type(exc).__name__}; retry with backoff")


class SqlStore:
    """Reads on ``engine``, writes through ``writer``.

    ``decision_wait_s``: how long after its creation a decision not found is looked up again
    (0: never; the module docstring says why); ``decision_poll_s``: the pause between lookups.
    """

    def __init__(
        self,
        engine: Engine,
        writer: EventWriter,
        metrics: Any = None,
        *,
        decision_wait_s: float = 0.0,
        decision_poll_s: float = 0.005,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.metrics = metrics
        self.decision_wait_s = decision_wait_s
        self.decision_poll_s = decision_poll_s

    async def _read(self, op: str, fn: Any, *args: Any) -> Any:
        check_deadline(0.0, f"the database read ({op})")  # nobody waits for a late answer
        try:
            return await asyncio.to_thread(fn, *args)
        except (OperationalError, DBAPIError, OSError) as exc:
            if self.metrics is not None:
                self.metrics.db_error(op)
            raise _unavailable(exc) from None

    async def _write(self, op: str, coro: Any) -> Any:
        try:
            check_deadline(0.0, f"the database write ({op})")
        except BanditrouteError:
            coro.close()
            raise
        try:
            return await coro
        except BanditrouteError:
            raise
        except (OperationalError, DBAPIError, OSError) as exc:
            if self.metrics is not None:
                self.metrics.db_error(op)
            raise _unavailable(exc) from None

    # ------------------------------------------------------------------ decisions
    async def write_decision(self, row: Mapping[str, Any]) -> int | None:
        """See :class:`EventWriter`."""
        return await self._write("write_decision", self.writer.write_decision(row))

    def submit_decision(self, row: Mapping[str, Any]) -> asyncio.Future[int | None]:
        """See :class:`EventWriter` (raises ``Unavailable`` or ``ResourceExhausted`` at once)."""
        return self.writer.submit_decision(row)

    async def find_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The stored decision of ``(tenant, request_id)``."""
        return await self._read("find_request", self._find_request, tenant, request_id)  # type: ignore[no-any-return]

    def _find_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                _FIND_REQUEST_SQL, {"tenant": tenant, "request_id": request_id}
            ).first()
        return None if row is None else dict(row._mapping)

    # ------------------------------------------------------------------ outcomes
    async def load_decisions(
        self, keys: Sequence[tuple[uuid.UUID, datetime]]
    ) -> dict[uuid.UUID, StoredDecision]:
        """Decisions by id with their outcome and feedback (waiting for recent ones: see the
        module docstring)."""
        if self.decision_wait_s > 0:
            await self.writer.settle([k for k, _ in keys], self.decision_wait_s)
        found: dict[uuid.UUID, StoredDecision] = await self._read(
            "load_decisions", self._load_decisions, keys
        )
        if self.decision_wait_s <= 0 or len(found) == len(keys):
            return found
        while True:
            now = time.time()
            young = [
                (d, c)
                for d, c in keys
                if d not in found and now - c.timestamp() < self.decision_wait_s
            ]
            if not young:
                return found
            await asyncio.sleep(self.decision_poll_s)
            found.update(await self._read("load_decisions", self._load_decisions, young))

    def _load_decisions(
        self, keys: Sequence[tuple[uuid.UUID, datetime]]
    ) -> dict[uuid.UUID, StoredDecision]:
        ids = list({k for k, _ in keys})
        ts = list({t for _, t in keys})
        out: dict[uuid.UUID, StoredDecision] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(_DECISIONS_SQL, {"ids": ids, "ts": ts}).all()
        for r in rows:
            item = StoredDecision(
                decision_id=r.decision_id,
                created_at=r.created_at,
                tenant=r.tenant,
                model=r.model,
                policy=PolicyKey(r.policy_name, int(r.policy_version)),
                estimated_cost_usd=float(r.estimated_cost_usd),
                route=r.route or "",
                variant=r.variant or "",
            )
            if r.o_event_id is not None:
                item.outcome = {k: getattr(r, k) for k in _OUTCOME_FIELDS}
                item.outcome["event_id"] = r.o_event_id
            for f in r.feedback or ():
                item.feedback[f["feedback_key"]] = f
            out[r.decision_id] = item
        return out

    async def write_outcomes(self, rows: Sequence[dict[str, Any]]) -> list[WriteResult]:
        """See :class:`EventWriter`."""
        return await self._write("write_outcomes", self.writer.write_outcomes(rows))  # type: ignore[no-any-return]

    async def write_feedback(self, row: dict[str, Any]) -> WriteResult:
        """See :class:`EventWriter`."""
        return await self._write("write_feedback", self.writer.write_feedback(row))  # type: ignore[no-any-return]
