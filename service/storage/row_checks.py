"""Checks of outcome and feedback rows inside the batch transaction, and their results.

Before a batch inserts an outcome or a piece of feedback it looks up, in the same transaction,
the decision (it must exist and, when the caller names a tenant, belong to it) and any row already
stored under the same key (one outcome per decision; one feedback per ``(decision_id,
feedback_key)``). An identical repeat is a DUPLICATE, a different one a CONFLICT; neither is
written. The queries here fetch what the checks need; :func:`classify` sorts the rows, the
same way for both tables (:data:`OUTCOMES`, :data:`FEEDBACK`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from banditroute.service.errors import AlreadyExists, NotFound, PermissionDenied
from banditroute.service.storage.rows import FEEDBACK_COLUMNS, OUTCOME_COLUMNS, DecisionRow
from banditroute.service.storage.sql_literals import timestamp_array, uuid_array

__all__ = [
    "FEEDBACK",
    "OUTCOMES",
    "RowKind",
    "WriteResult",
    "WriteStatus",
    "claim_query",
    "classify",
    "decisions_query",
    "feedback_query",
    "first_request_ids",
    "outcomes_query",
    "rated_query",
]

#: An indexed row of the batch: (position in the batch, row).
Indexed = tuple[int, dict[str, Any]]


class WriteStatus(enum.Enum):
    """What happened to one outcome or feedback row."""

    INSERTED = "inserted"
    #: An identical row was already stored (result carries its event id); nothing written.
    DUPLICATE = "duplicate"
    #: A different row was already stored for the same key; nothing written.
    CONFLICT = "conflict"
    #: No decision with this id exists.
    UNKNOWN_DECISION = "unknown_decision"
    #: The decision belongs to another tenant than the caller's.
    WRONG_TENANT = "wrong_tenant"
    #: An outcome written without reading its decision first (``unverified``: the decision is
    #: one this process answered recently) whose decision turned out to have an outcome or
    #: feedback already, or not to exist: nothing written; the caller reads the decision and
    #: writes the outcome again (:mod:`banditroute.service.core.outcomes`).
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Result of one outcome or feedback write.

    ``event_id`` is the new row's id (INSERTED) or the stored row's (DUPLICATE, CONFLICT),
    else 0. ``stored`` holds the stored row's compared fields plus ``reward`` for outcomes
    (DUPLICATE, CONFLICT), else None. ``tenant`` is the decision's tenant when it exists.
    """

    status: WriteStatus
    event_id: int = 0
    stored: Mapping[str, Any] | None = None
    tenant: str | None = None

    @property
    def ok(self) -> bool:
        """True for INSERTED and DUPLICATE (the client's write is in the log)."""
        return self.status in (WriteStatus.INSERTED, WriteStatus.DUPLICATE)

    def raise_for_status(self, what: str = "outcome") -> WriteResult:
        """Return self when :attr:`ok`, else raise the matching domain error."""
        if self.status is WriteStatus.WRONG_TENANT:
            raise PermissionDenied(f"the decision of this {what} belongs to another tenant")
        if self.status is WriteStatus.UNKNOWN_DECISION:
            raise NotFound(f"unknown decision_id for this {what}")
        if self.status is WriteStatus.CONFLICT:
            raise AlreadyExists(f"a different {what} was already recorded for this decision")
        return self


# -- lookups, queued in the batch's pipeline ------------------------------------------------


def first_request_ids(
    decisions: Sequence[tuple[int, DecisionRow]],
) -> dict[tuple[str, str], DecisionRow]:
    """The first decision row of each ``(tenant, request_id)`` in the batch."""
    first: dict[tuple[str, str], DecisionRow] = {}
    for _, row in decisions:
        if row.request_id:
            first.setdefault((row.tenant, row.request_id), row)
    return first


def claim_query(keyed: Mapping[tuple[str, str], DecisionRow]) -> tuple[str, tuple[Any, ...]]:
    """Claim each request id for its decision; returns the ``(tenant, request_id)`` claimed."""
    rows = list(keyed.values())
    return (
        "INSERT INTO request_ids (tenant, request_id, decision_id, created_at) "
        "SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[], %s::timestamptz[]) "
        "ON CONFLICT DO NOTHING RETURNING tenant, request_id",
        (
            [row.tenant for row in rows],
            [row.request_id for row in rows],
            uuid_array(row.decision_id for row in rows),
            timestamp_array(row.created_at for row in rows),
        ),
    )


def decisions_query(rows: Sequence[Mapping[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """Tenants of the stored decisions among ``rows`` (by exact id and partition key)."""
    keys = {(row["decision_id"], row["decision_created_at"]) for row in rows}
    return (
        "SELECT d.decision_id, d.tenant FROM unnest(%s::uuid[], %s::timestamptz[]) AS k(id, ts) "
        "JOIN decisions d ON d.decision_id = k.id AND d.created_at = k.ts",
        (uuid_array(k[0] for k in keys), timestamp_array(k[1] for k in keys)),
    )


def outcomes_query(outcomes: Sequence[Indexed]) -> tuple[str, tuple[Any, ...]]:
    """Stored outcomes of the outcomes' decisions."""
    return (
        f"SELECT decision_id, event_id, {', '.join(OUTCOME_COLUMNS)}, reward FROM outcomes "
        "WHERE decision_id = ANY(%s::uuid[])",
        (uuid_array(row["decision_id"] for _, row in outcomes),),
    )


def rated_query(rows: Sequence[Indexed]) -> tuple[str, tuple[Any, ...]]:
    """Decision ids among ``rows``' decisions that have feedback."""
    return (
        "SELECT DISTINCT decision_id FROM feedback WHERE decision_id = ANY(%s::uuid[])",
        (uuid_array(row["decision_id"] for _, row in rows),),
    )


def feedback_query(feedback: Sequence[Indexed]) -> tuple[str, tuple[Any, ...]]:
    """Stored feedback under the same ``(decision_id, feedback_key)``."""
    return (
        f"SELECT f.decision_id, f.feedback_key, f.event_id, "
        f"{', '.join(f'f.{c}' for c in FEEDBACK_COLUMNS)} "
        "FROM unnest(%s::uuid[], %s::text[]) AS k(id, key) "
        "JOIN feedback f ON f.decision_id = k.id AND f.feedback_key = k.key",
        (
            uuid_array(row["decision_id"] for _, row in feedback),
            [row["feedback_key"] for _, row in feedback],
        ),
    )


# -- classification -------------------------------------------------------------------------

#: Tenant of each decision written earlier in this batch: decision id -> (position, tenant).
InBatch = dict[uuid.UUID, tuple[int, str]]
#: A row to insert: (position in the batch, row, the decision's tenant).
ToInsert = list[tuple[int, dict[str, Any], str]]


class RowKind(NamedTuple):
    """How rows of one table are keyed and compared."""

    #: The row's key (one stored row per key), first in the lookup query's records.
    key: tuple[str, ...]
    #: Fields compared for DUPLICATE vs CONFLICT, after the event id in the records.
    columns: tuple[str, ...]
    #: Fields returned with a stored row but not compared.
    extra: tuple[str, ...] = ()

    def key_of(self, row: Mapping[str, Any]) -> Any:
        """The key of ``row`` (a record's first ``len(key)`` values, as a tuple when several)."""
        return row[self.key[0]] if len(self.key) == 1 else tuple(row[c] for c in self.key)


OUTCOMES = RowKind(("decision_id",), OUTCOME_COLUMNS, ("reward",))
FEEDBACK = RowKind(("decision_id", "feedback_key"), FEEDBACK_COLUMNS)


def classify(
    kind: RowKind,
    rows: list[Indexed],
    records: Sequence[Sequence[Any]],
    known: dict[uuid.UUID, str],
    in_batch: InBatch,
    results: list[Any],
) -> ToInsert:
    """Sort ``rows`` into refused (access), DUPLICATE/CONFLICT of a stored row (``results`` gets
    their :class:`WriteResult`) and rows to insert (returned). ``records`` are the rows of
    :func:`outcomes_query` or :func:`feedback_query`: key, event id, ``kind.columns``,
    ``kind.extra``.

    A row to insert becomes the stored row of its key for later rows of the batch, with event
    id ``-1 - position`` (the caller turns it into the row's event id).
    """
    width = len(kind.key)
    names = (*kind.columns, *kind.extra)
    stored = {
        (r[0] if width == 1 else tuple(r[:width])): (
            r[width],
            dict(zip(names, r[width + 1 :], strict=True)),
        )
        for r in records
    }
    to_insert = []
    for i, row in rows:
        denied, tenant = _access(i, row, known, in_batch)
        if denied is not None:
            results[i] = denied
            continue
        key = kind.key_of(row)
        existing = stored.get(key)
        if existing is not None:
            event_id, fields = existing
            same = all(_same(fields[c], row.get(c), c) for c in kind.columns)
            status = WriteStatus.DUPLICATE if same else WriteStatus.CONFLICT
            results[i] = WriteResult(status, event_id, fields, tenant)
            continue
        assert tenant is not None
        to_insert.append((i, row, tenant))
        stored[key] = (
            -1 - i,
            {**{c: row.get(c) for c in kind.columns}, **{c: row[c] for c in kind.extra}},
        )
    return to_insert


def _access(
    i: int, row: Mapping[str, Any], known: dict[uuid.UUID, str], in_batch: InBatch
) -> tuple[WriteResult | None, str | None]:
    tenant = known.get(row["decision_id"])
    if tenant is None:
        earlier = in_batch.get(row["decision_id"])
        if earlier is not None and earlier[0] < i:  # its decision is written in this batch
            tenant = earlier[1]
    if tenant is None:
        return WriteResult(WriteStatus.UNKNOWN_DECISION), None
    if row.get("tenant") is not None and row["tenant"] != tenant:
        return WriteResult(WriteStatus.WRONG_TENANT), None
    return None, tenant


def _same(stored: Any, given: Any, column: str) -> bool:
    if column in ("error", "source"):
        return (stored or "") == (given or "")
    return bool(stored == given)
