"""RecordOutcome(s) and SubmitFeedback: validate, join to the decision, compute the reward, log.

Every accepted outcome or rating is one event of the log, written through the group-commit
writer; the call is answered only after the commit. The policies do not learn here: every
process learns by following the log (:mod:`banditroute.service.core.follower`), including this one,
which is woken right after the commit.

Reward (see :mod:`banditroute.learners.reward`):
``clip(quality - cost_weight * cost_usd - latency_weight * latency_s)`` with the weights of the
decision's policy version, where quality merges the outcome's ``quality`` (else ``success`` as 1/0,
and 0 for an errored call) with the mean of the ratings received so far (``feedback_weight``). When
``cost_usd`` is absent it is computed from the token counts and the chosen model's prices; without
token counts the decision's estimated cost is used. The reward returned to the caller is the one
computed at write time; the follower recomputes the same rule in log order (which decides when two
writes race).

Duplicates: an identical repeat of a recorded outcome (or of feedback with the same
``feedback_id``) is answered OK with ``duplicate = true`` and the stored values; a different
one is ``ALREADY_EXISTS``. Ratings are final: a later, different rating from the same source (or
with the same ``feedback_id``) is ``ALREADY_EXISTS`` and changes nothing (docs/service.md,
"Changing a rating", says why and what a client does instead).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from banditroute.learners.reward import RewardWeights
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.budgets import BudgetBook
from banditroute.service.core.config_cache import ConfigSnapshot
from banditroute.service.core.outcome_inputs import (
    MAX_SOURCE,
    MAX_TEXT,
    FeedbackInput,
    FeedbackResult,
    OutcomeInput,
    OutcomeResult,
    OutcomeStore,
    RecentDecisions,
    StoredDecision,
    opt_float,
    same_outcome,
    validate_outcome,
)
from banditroute.service.core.policies import OutcomeFacts, reward_of
from banditroute.service.errors import (
    AlreadyExists,
    BanditrouteError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    error_class,
)
from banditroute.service.storage.ids import parse_decision_id
from banditroute.service.storage.writer import WriteStatus

__all__ = [
    "FeedbackInput",
    "FeedbackResult",
    "OutcomeCore",
    "OutcomeInput",
    "OutcomeResult",
    "OutcomeStore",
    "RecentDecisions",
    "StoredDecision",
]



class OutcomeCore:
    """Outcome and feedback use cases.

    Parameters
    ----------
    store
        Decision reads and event writes.
    config
        Callable returning the current config snapshot (models' prices, policies' weights).
    on_written
        Called after each commit (wakes this process's follower).
    max_batch_items
        Largest RecordOutcomes batch.
    """

    def __init__(
        self,
        store: OutcomeStore,
        config: Callable[[], ConfigSnapshot],
        *,
        on_written: Callable[[], None] | None = None,
        max_batch_items: int = 1000,
        metrics: Any = None,
        pending: Callable[[uuid.UUID], bool] | None = None,
        recent: RecentDecisions | None = None,
        budgets: BudgetBook | None = None,
    ) -> None:
        self.store = store
        self._config = config
        self.on_written = on_written
        self.max_batch_items = max_batch_items
        self.metrics = metrics
        #: True for a decision answered during a database outage and not stored yet (see
        #: banditroute.service.core.decision_buffer): its outcome gets UNAVAILABLE (retry), not
        #: NOT_FOUND.
        self.pending = pending
        #: Decisions this process answered recently, joined without reading them back
        #: (:meth:`_record`); None: every outcome reads its decision.
        self.recent = recent
        #: The routes' budget controllers: an outcome's spend counts against a hard cap as
        #: soon as it is acknowledged, before the follower applies it.
        self.budgets = budgets

    def _missing(self, did: uuid.UUID, text: str) -> BanditrouteError:
        if self.pending is not None and self.pending(did):
            return Unavailable(f"decision {text!r} is not stored yet (database outage); retry")
        return NotFound(f"decision {text!r} not found")

    def _weights(self, key: PolicyKey) -> RewardWeights:
        spec = self._config().policies.get(key)
        return spec.weights if spec is not None else RewardWeights()

    def _cost(self, item: OutcomeInput, decision: StoredDecision) -> float:
        if item.cost_usd is not None:
            return item.cost_usd
        if item.input_tokens is None and item.output_tokens is None:
            return float(decision.estimated_cost_usd)
        model = self._config().models.get(decision.model)
        if model is None:
            return float(decision.estimated_cost_usd)
        return model.cost_usd(item.input_tokens or 0, item.output_tokens or 0)

    @staticmethod
    def _ratings(decision: StoredDecision) -> list[float]:
        return [float(f["rating"]) for f in decision.feedback.values()]

    @staticmethod
    def _check_tenant(decision: StoredDecision, tenant: str | None) -> None:
        if tenant is not None and decision.tenant != tenant:
            raise PermissionDenied("the decision belongs to another tenant")

    async def record_outcome(self, item: OutcomeInput, tenant: str | None = None) -> OutcomeResult:
        """Record one outcome; raises the domain error that rejects it."""
        result = (await self.record_outcomes([item], tenant, batch=False))[0]
        if result.code != "OK":
            raise error_class(result.code)(result.message)
        return result

    async def record_outcomes(
        self, items: Sequence[OutcomeInput], tenant: str | None = None, *, batch: bool = True
    ) -> list[OutcomeResult]:
        """Record outcomes; one result per item, in order (errors per item)."""
        if batch and len(items) > self.max_batch_items:
            raise InvalidArgument(
                f"a RecordOutcomes batch holds at most {self.max_batch_items} items"
            )
        results = [OutcomeResult(decision_id=i.decision_id) for i in items]
        parsed: list[tuple[int, OutcomeInput, uuid.UUID, datetime]] = []
        for n, raw in enumerate(items):
            try:
                item = validate_outcome(raw)
                did, created = parse_decision_id(item.decision_id)
                parsed.append((n, item, did, created))
            except BanditrouteError as exc:
                _reject(results[n], exc)
        spent: dict[int, tuple[StoredDecision, float]] = {}  # item -> (decision, cost) written
        if parsed:
            stale = await self._record(parsed, tenant, results, spent, recent=True)
            if stale:  # their decision had an outcome or feedback after all: read it first
                await self._record(stale, tenant, results, spent, recent=False)
        if self.metrics is not None:
            self._count_outcomes(results, spent)
        return results

    async def _record(
        self,
        parsed: list[tuple[int, OutcomeInput, uuid.UUID, datetime]],
        tenant: str | None,
        results: list[OutcomeResult],
        spent: dict[int, tuple[StoredDecision, float]],
        *,
        recent: bool,
    ) -> list[tuple[int, OutcomeInput, uuid.UUID, datetime]]:
        """Join ``parsed`` items to their decisions and write their outcomes (``results`` and
        ``spent`` get theirs); returns the items to write again after reading their decision
        (written unverified, found STALE).

        With ``recent``, a decision this process answered recently (:attr:`recent`) is taken
        from memory instead of read: its outcome row is written ``unverified``, and the write
        transaction answers STALE when the decision turns out to have an outcome or feedback
        already (the reward or the answer would depend on them) or not to exist.
        """
        decisions: dict[uuid.UUID, StoredDecision] = {}
        unverified: set[uuid.UUID] = set()
        to_read = parsed
        if recent and self.recent is not None:
            to_read = []
            for entry in parsed:
                decision = self._recent_decision(entry[2])
                if decision is None:
                    to_read.append(entry)
                else:
                    decisions[entry[2]] = decision
                    unverified.add(entry[2])
        if to_read:
            decisions.update(await self.store.load_decisions([(d, c) for _, _, d, c in to_read]))
        rows: list[dict[str, Any]] = []
        row_of: list[int] = []
        in_batch: dict[uuid.UUID, dict[str, Any]] = {}
        for n, item, did, _created in parsed:
            decision = decisions.get(did)
            try:
                if decision is None:
                    raise self._missing(did, item.decision_id)
                self._check_tenant(decision, tenant)
                row = self._outcome_row(item, decision)
                stored = decision.outcome or in_batch.get(did)
                if stored is not None:
                    if not same_outcome(stored, row):
                        raise AlreadyExists(
                            f"decision {item.decision_id!r} already has a different outcome"
                        )
                    results[n].duplicate = True
                    results[n].reward = float(stored["reward"])
                    results[n].event_id = int(stored.get("event_id") or 0)
                    if did in in_batch:
                        row_of.append(-n - 1)  # resolved after the write
                    continue
                if did in unverified:
                    row["unverified"] = True
                in_batch[did] = row
                rows.append(row)
                row_of.append(n)
            except BanditrouteError as exc:
                _reject(results[n], exc)
        if not rows:
            return []
        written = await self.store.write_outcomes(rows)
        if self.on_written is not None:
            self.on_written()
        by_decision: dict[uuid.UUID, tuple[int, float]] = {}
        stale_items: set[int] = set()
        positions = [k for k in row_of if k >= 0]
        for n, row, w in zip(positions, rows, written, strict=True):
            if w.status is WriteStatus.INSERTED:
                results[n].event_id = w.event_id
                results[n].reward = float(row["reward"])
                decision, cost = decisions[row["decision_id"]], float(row["cost_usd"])
                spent[n] = (decision, cost)
                if self.budgets is not None:
                    self.budgets.acknowledge(w.event_id, decision.tenant, decision.route,
                                             decision.created_at, cost)
                if row.get("unverified"):
                    self.recent.forget_recent(row["decision_id"])  # type: ignore[union-attr]
            elif w.status is WriteStatus.DUPLICATE:  # raced with an identical write
                results[n].duplicate = True
                results[n].event_id = max(w.event_id, 0)
                results[n].reward = float((w.stored or {}).get("reward", row["reward"]))
            elif w.status is WriteStatus.STALE:
                self.recent.forget_recent(row["decision_id"])  # type: ignore[union-attr]
                stale_items.add(n)
                continue
            else:
                try:
                    w.raise_for_status("outcome")
                except BanditrouteError as exc:
                    _reject(results[n], exc)
                continue
            by_decision[row["decision_id"]] = (results[n].event_id, results[n].reward)
        stale = [entry for entry in parsed if entry[0] in stale_items]
        for m in (-k - 1 for k in row_of if k < 0):
            did = parse_decision_id(results[m].decision_id)[0]
            if did in by_decision:
                results[m].event_id, results[m].reward = by_decision[did]
            elif stale_items and did in {entry[2] for entry in stale}:
                # a repeat of an item written again: it is rejoined with it
                results[m].duplicate = False
                stale.append(next(entry for entry in parsed if entry[0] == m))
        stale.sort(key=lambda entry: entry[0])
        return stale

    def _recent_decision(self, did: uuid.UUID) -> StoredDecision | None:
        """The decision ``did`` from :attr:`recent` (None: not there, or held in the outage
        buffer and not stored yet)."""
        assert self.recent is not None
        found = self.recent.recent(did)
        if found is None or (self.pending is not None and self.pending(did)):
            return None
        created_at, tenant, model, policy, version, cost, route, variant = found
        return StoredDecision(
            decision_id=did,
            created_at=created_at,
            tenant=tenant,
            model=model,
            policy=PolicyKey(policy, int(version)),
            estimated_cost_usd=cost,
            route=route or "",
            variant=variant or "",
        )

    def _count_outcomes(
        self, results: list[OutcomeResult], spent: dict[int, tuple[StoredDecision, float]]
    ) -> None:
        metrics = self.metrics
        for n, r in enumerate(results):
            result = "rejected" if r.code != "OK" else "duplicate" if r.duplicate else "ok"
            metrics.outcomes_counter(result).inc()
            if n in spent:
                decision, cost = spent[n]
                self._observe(decision, r.reward)
                metrics.spend(
                    cost, route=decision.route, model=decision.model, variant=decision.variant
                )

    def _observe(self, decision: StoredDecision, reward: float) -> None:
        self.metrics.observe_reward(
            reward, route=decision.route, policy=decision.policy.name, variant=decision.variant
        )

    def _outcome_row(self, item: OutcomeInput, decision: StoredDecision) -> dict[str, Any]:
        cost = self._cost(item, decision)
        facts = OutcomeFacts(
            quality=item.quality,
            success=item.success,
            error=bool(item.error),
            cost_usd=cost,
            latency_ms=item.latency_ms,
        )
        reward = reward_of(self._weights(decision.policy), facts, self._ratings(decision))
        return {
            "decision_id": decision.decision_id,
            "decision_created_at": decision.created_at,
            "tenant": decision.tenant,
            "quality": item.quality,
            "success": item.success,
            "input_tokens": item.input_tokens,
            "output_tokens": item.output_tokens,
            "cost_usd": cost,
            "latency_ms": item.latency_ms,
            "error": item.error,
            "reward": 0.0 if reward is None else reward,
        }

    async def submit_feedback(
        self, item: FeedbackInput, tenant: str | None = None
    ) -> FeedbackResult:
        """Attach a rating to a decision; returns the decision's merged reward."""
        rating = opt_float("rating", item.rating, 0.0, 1.0)
        assert rating is not None
        if item.comment is not None and len(item.comment) > MAX_TEXT:
            raise InvalidArgument(f"comment is longer than {MAX_TEXT} characters")
        if len(item.source) > MAX_SOURCE or len(item.feedback_id) > MAX_SOURCE:
            raise InvalidArgument(f"source and feedback_id are at most {MAX_SOURCE} characters")
        did, created = parse_decision_id(item.decision_id)
        if self.recent is not None:  # its outcomes must read it from now on (it has feedback)
            self.recent.forget_recent(did)
        decision = (await self.store.load_decisions([(did, created)])).get(did)
        if decision is None:
            raise self._missing(did, item.decision_id)
        self._check_tenant(decision, tenant)
        key = item.feedback_id or f"source:{item.source}"
        weights = self._weights(decision.policy)
        outcome = self._facts(decision.outcome)
        existing = decision.feedback.get(key)
        if existing is not None:
            if float(existing["rating"]) != rating or existing.get("comment") != item.comment:
                raise AlreadyExists(
                    f"feedback {key!r} already exists with different content: a rating is final "
                    "(one per source, or per feedback_id); see 'Changing a rating' in "
                    "docs/service.md"
                )
            reward = reward_of(weights, outcome, self._ratings(decision))
            self._count_feedback("duplicate")
            return FeedbackResult(
                0.0 if reward is None else reward, int(existing["event_id"]), duplicate=True
            )
        ratings = [*self._ratings(decision), rating]
        reward = reward_of(weights, outcome, ratings)
        row = {
            "decision_id": did,
            "decision_created_at": decision.created_at,
            "tenant": decision.tenant,
            "feedback_key": key,
            "rating": rating,
            "comment": item.comment,
            "source": item.source,
        }
        written = await self.store.write_feedback(row)
        if self.on_written is not None:
            self.on_written()
        written.raise_for_status("feedback")
        value = 0.0 if reward is None else reward
        if written.status is WriteStatus.DUPLICATE:  # raced with an identical write
            self._count_feedback("duplicate")
            return FeedbackResult(value, written.event_id, duplicate=True)
        self._count_feedback("ok")
        if self.metrics is not None:
            self._observe(decision, value)
        return FeedbackResult(value, written.event_id)

    def _count_feedback(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.feedback.labels(result).inc()

    @staticmethod
    def _facts(row: dict[str, Any] | None) -> OutcomeFacts | None:
        if row is None:
            return None
        return OutcomeFacts(
            quality=row.get("quality"),
            success=row.get("success"),
            error=bool(row.get("error")),
            cost_usd=float(row.get("cost_usd") or 0.0),
            latency_ms=row.get("latency_ms"),
        )


def _reject(result: OutcomeResult, exc: BanditrouteError) -> None:
    result.code = exc.code
    result.message = exc.message
