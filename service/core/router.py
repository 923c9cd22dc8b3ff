"""The Route use case: featurize, estimate costs, select, pace, log, answer.

Route never reads the database on its hot path: routes, models and policies come from the
follower's in-memory :class:`~banditroute.service.core.config_cache.ConfigSnapshot` and
:class:`~banditroute.service.core.policies.PolicyRegistry`. The decision row goes to the
:class:`DecisionStore` (the group-commit writer behind the outage buffer): a decision without a
request id, or with a ``fresh_request_id``, is answered at once and committed off the request
path; one with a request id that may have been sent before is answered once committed.

Idempotency: a Route with a ``request_id`` answers the stored decision of ``(tenant,
request_id)`` when there is one (``replayed = true``): from a per-process cache; else its new
decision's write claims the id in the ``request_ids`` table and, when the id is taken (a retry
that reached another process), the stored decision is read and replayed (so it holds across
processes); concurrent calls with the same id in one process share one decision. Only an
identical retry is answered so: a reused ``request_id`` whose payload differs (another prompt,
by its SHA-256; another route, unit or context; candidates that do not hold the stored ones; in
this process, any field) is ``ALREADY_EXISTS`` (:mod:`banditroute.service.core.idempotency`).

Exploration randomness comes from a per-process generator passed as ``rng=`` to the policies,
so a policy's state depends only on the event log. Models added to the pool after a policy
version are "cold" until their first outcome and explored (:meth:`RouterCore._select`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from banditroute.learners.base import Decision, Policy
from banditroute.learners.cost import CostModel
from banditroute.learners.features import FeatureExtractor, context_group, estimate_tokens
from banditroute.service.core import idempotency
from banditroute.service.core.assignment import ExperimentResolver, RoutePolicyResolver
from banditroute.service.core.budgets import BudgetBook, paced_decision
from banditroute.service.core.config_cache import ConfigSnapshot, ModelEntry
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.core.route_request import (
    DEFAULT_ROUTE,
    RankedModel,
    RouteRequest,
    RouteResult,
    replayed,
    validate_route_request,
)
from banditroute.service.errors import (
    BanditrouteError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from banditroute.service.storage.ids import new_decision_id
from banditroute.service.storage.rows import DecisionRow

__all__ = ["DecisionStore", "RouterCore"]


class _RequestIdTaken(Exception):
    """The new decision's write found its request id held by another decision."""


class DecisionStore(Protocol):
    """Where decisions go: the group-commit writer plus the request-id lookup."""

    async def write_decision(self, row: DecisionRow, *, fresh: bool = False) -> int | None:
        """Write a decision row; return its event id once committed, or None when the
        ``(tenant, request_id)`` already had a decision (nothing written). ``fresh``: the
        row's request id was never sent before, so it may be answered before its commit (0)
        like a row without one."""
        ...

    async def find_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The stored decision row of ``(tenant, request_id)``, or None."""
        ...

    def held_request(self, tenant: str, request_id: str) -> dict[str, Any] | None:
        """The decision row of ``(tenant, request_id)`` held in memory, not written yet (a
        database outage), or None; reads no database."""
        ...


class RouterCore:
    """Chooses a model for each request.

    Parameters
    ----------
    registry
        Live policies of this process.
    config
        Callable returning the current config snapshot (kept current by the follower).
    store
        Decision writer (answers after commit).
    extractor
        Feature extractor (its ``dim`` must equal the registry's).
    cost_model
        Predicts output tokens per model; None uses a flat prior.
    resolver
        Experiment hook; the default serves the route's policy.
    max_prompt_bytes
        Larger prompts are INVALID_ARGUMENT.
    store_prompts
        Store raw prompt text with each decision.
    rng
        Per-process exploration generator.
    """

    def __init__(
        self,
        registry: PolicyRegistry,
        config: Any,
        store: DecisionStore,
        *,
        extractor: FeatureExtractor | None = None,
        cost_model: CostModel | None = None,
        resolver: ExperimentResolver | None = None,
        max_prompt_bytes: int = 1 << 20,
        store_prompts: bool = False,
        rng: np.random.Generator | None = None,
        metrics: Any = None,
        replay_cache_size: int = 50_000,
        budgets: BudgetBook | None = None,
    ) -> None:
        self.registry = registry
        self._config = config
        self.store = store
        self.extractor = extractor or FeatureExtractor(dim=registry.dim)
        self.cost_model = cost_model or CostModel(dim=self.extractor.dim)
        self.resolver: ExperimentResolver = resolver or RoutePolicyResolver()
        self.max_prompt_bytes = max_prompt_bytes
        self.store_prompts = store_prompts
        self.rng = rng if rng is not None else np.random.default_rng()
        self.metrics = metrics
        #: The routes' budget controllers (the follower's; None: no pacing).
        self.budgets = budgets
        #: (tenant, request_id) -> (payload fingerprint, answer)
        self._replays: OrderedDict[tuple[str, str], tuple[bytes, RouteResult]] = OrderedDict()
        self._replay_cache_size = replay_cache_size
        self._pending: dict[tuple[str, str], tuple[bytes, asyncio.Future[RouteResult]]] = {}

    @property
    def config(self) -> ConfigSnapshot:
        """The current configuration snapshot."""
        snap: ConfigSnapshot = self._config()
        return snap

    # ------------------------------------------------------------------ candidates
    def _candidates(
        self, req: RouteRequest, snap: ConfigSnapshot, route_models: Sequence[str]
    ) -> list[ModelEntry]:
        models = snap.models
        if req.candidates:
            out: list[ModelEntry] = []
            seen: set[str] = set()
            allowed = set(route_models) if route_models else None
            for name in req.candidates:
                entry = models.get(name)
                if entry is None:
                    raise InvalidArgument(f"unknown candidate model {name[:128]!r}")
                if allowed is not None and name not in allowed:
                    raise InvalidArgument(
                        f"candidate model {name[:128]!r} is not a model of route {req.route!r}"
                    )
                if entry.enabled and name not in seen:
                    seen.add(name)
                    out.append(entry)
        elif route_models:
            out = [m for name in route_models if (m := models.get(name)) is not None and m.enabled]
        else:
            out = [models[name] for name in snap.enabled_models]
        if not out:
            raise FailedPrecondition("no enabled candidate model for this request")
        return out

    # ------------------------------------------------------------------ route
    async def route(self, req: RouteRequest) -> RouteResult:
        """Choose a model for ``req`` (see the module docstring)."""
        validate_route_request(req, self.max_prompt_bytes)
        if not req.route:
            req.route = DEFAULT_ROUTE
        if not req.request_id:
            return await self._decide(req)
        key = (req.tenant, req.request_id)
        fingerprint = idempotency.fingerprint(req)
        cached = self._replays.get(key)
        if cached is not None:
            idempotency.check_fingerprint(req, cached[0], fingerprint)
            return self._replay(cached[1])
        pending = self._pending.get(key)
        if pending is not None:
            idempotency.check_fingerprint(req, pending[0], fingerprint)
            return self._replay(await asyncio.shield(pending[1]))
        future: asyncio.Future[RouteResult] = asyncio.get_running_loop().create_future()
        self._pending[key] = (fingerprint, future)
        try:
            result = await self._decide_once(req)
            self._remember(key, fingerprint, result)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            del self._pending[key]

    async def _decide_once(self, req: RouteRequest) -> RouteResult:
        """The decision of ``req.request_id``: stored already (replayed), else a new one.

        No database read on the way in. Nothing can be stored under a fresh id; for any other
        id the new decision's write claims it, and finds it taken (a retry) when it is: then
        :meth:`_decide` reads the stored decision and replays it. A retry whose new decision
        fails (its route deleted since, its models disabled) gets the stored one too. Retries
        pay a wasted decision; first tries, the common case, pay no read.
        """
        stored = self.store.held_request(req.tenant, req.request_id)  # an outage holds it
        if stored is None:
            try:
                return await self._decide(req)
            except _RequestIdTaken:
                stored = await self.store.find_request(req.tenant, req.request_id)
                if stored is None:
                    raise FailedPrecondition(
                        "request_id conflict could not be resolved; retry"
                    ) from None
            except BanditrouteError:
                if req.fresh_request_id:
                    raise
                stored = await self.store.find_request(req.tenant, req.request_id)
                if stored is None:
                    raise
        idempotency.check_same_request(req, stored, DEFAULT_ROUTE)
        return self._replay(self._from_row(stored, req))

    def _replay(self, result: RouteResult) -> RouteResult:
        if self.metrics is not None:
            self.metrics.replays.inc()
        return replayed(result)

    def _remember(self, key: tuple[str, str], fingerprint: bytes, result: RouteResult) -> None:
        self._replays[key] = (fingerprint, result)
        if len(self._replays) > self._replay_cache_size:
            self._replays.popitem(last=False)

    async def _decide(self, req: RouteRequest) -> RouteResult:
        snap = self.config
        route = snap.route(req.tenant, req.route)
        if route is None:
            raise NotFound(f"route {req.route[:128]!r} not found")
        candidates = self._candidates(req, snap, route.models)
        assignment = self.resolver.resolve(req.tenant, route, req.unit_id or req.request_id)
        live = self.registry.get(assignment.policy)
        if live is None:
            raise FailedPrecondition(
                f"policy {assignment.policy.name!r} version {assignment.policy.version} "
                "is not loaded yet; retry"
            )
        x = self.extractor.extract(req.prompt, req.numeric_context, req.categorical_context)
        n_in = estimate_tokens(req.prompt)
        names = [m.id for m in candidates]
        n_out = self.cost_model.predict_output_tokens_many(names, x)  # one matrix product
        costs = {m.id: m.cost_usd(n_in, n_out[m.id]) for m in candidates}
        if req.max_cost_usd is not None:
            limit = req.max_cost_usd
            names = [n for n in names if costs[n] <= limit]
            if not names:
                raise FailedPrecondition(
                    f"no candidate model is estimated under max_cost_usd={limit:g}"
                )
        group = context_group(req.categorical_context)
        decision = self._select(live.policy, x, names, group)
        shadow = None
        if assignment.shadows:
            shadow = self._score_shadows(assignment, x, names, group)
        now = datetime.now(UTC)
        created_at = now.replace(microsecond=now.microsecond // 1000 * 1000)  # id precision
        decision_id = new_decision_id(created_at)
        decision, pacing, pacing_weight = paced_decision(self.budgets, route, decision, costs,
                                                         created_at)
        ranking = decision.ranking
        scores = decision.scores
        probabilities = decision.probabilities
        score_list = [float(scores[n]) for n in ranking]
        prob_list = [float(probabilities[n]) for n in ranking]
        prompt_bytes = req.prompt.encode("utf-8", "surrogatepass")
        row = DecisionRow(
            decision_id=decision_id,
            created_at=created_at,
            tenant=req.tenant,
            route=req.route,
            request_id=req.request_id,
            unit_id=req.unit_id,
            policy_name=assignment.policy.name,
            policy_version=assignment.policy.version,
            experiment=assignment.experiment,
            variant=assignment.variant,
            bucket=assignment.bucket if assignment.bucket >= 0 else None,
            model=decision.arm,
            propensity=float(decision.propensity),
            candidates=ranking,
            scores=score_list,
            probabilities=prob_list,
            estimated_cost_usd=costs[decision.arm],
            features=(x if x.dtype.str == "<f8" else x.astype("<f8")).tobytes(),
            numeric_context=dict(req.numeric_context) if req.numeric_context else {},
            categorical_context=dict(req.categorical_context) if req.categorical_context else {},
            prompt_hash=hashlib.sha256(prompt_bytes).digest(),
            prompt=req.prompt if self.store_prompts else None,
            shadow=shadow,
            pacing_cost_weight=pacing_weight,
            pacing=pacing,
        )
        event_id = await self.store.write_decision(row, fresh=req.fresh_request_id)
        if event_id is None:  # another decision holds this request id: _decide_once replays it
            raise _RequestIdTaken
        if self.metrics is not None:
            self.metrics.decision(
                decision.arm,
                route=req.route,
                policy=assignment.policy.name,
                variant=assignment.variant,
            )
        return RouteResult(
            decision_id=str(decision_id),
            model=decision.arm,
            propensity=float(decision.propensity),
            score=float(scores[decision.arm]),
            estimated_cost_usd=costs[decision.arm],
            fallbacks=[
                RankedModel(ranking[j], score_list[j], prob_list[j], costs[ranking[j]])
                for j in range(1, len(ranking))
            ],
            policy=assignment.policy.name,
            policy_version=assignment.policy.version,
            experiment=assignment.experiment,
            variant=assignment.variant,
            route=req.route,
            pacing=pacing,
            pacing_cost_weight=pacing_weight,
        )

    def _select(self, policy: Policy, x: np.ndarray, names: list[str],
                group: str | None) -> Decision:
        """The policy's decision; models that are not arms yet ("cold") get explored.

        A model added to the pool after the policy version becomes an arm at its first outcome
        (see :mod:`banditroute.service.core.policies`). Until then each cold candidate is chosen
        with probability ``1 / len(candidates)`` and the policy chooses among the others with the
        remaining probability; the logged propensities are exact.
        """
        arms = set(policy.arms)
        cold = [n for n in names if n not in arms]
        if not cold:
            return policy.select(x, names, rng=self.rng, group=group)
        known = [n for n in names if n in arms]
        total = len(names)
        base = policy.select(x, known, rng=self.rng, group=group) if known else None
        explore = base is None or self.rng.random() < len(cold) / total
        chosen = cold[int(self.rng.integers(len(cold)))] if explore else base.arm  # type: ignore[union-attr]
        probabilities = {n: 1.0 / total for n in cold}
        scores = {n: 0.0 for n in cold}
        ranking = [chosen, *(n for n in cold if n != chosen)]
        if base is not None:
            top = max(base.scores.values())
            scores = {n: top for n in cold}  # optimistic: a new model is worth trying
            share = len(known) / total
            for n in known:
                probabilities[n] = base.probabilities[n] * share
                scores[n] = base.scores[n]
            ranking += [n for n in base.ranking if n != chosen]
        return Decision(chosen, probabilities[chosen], scores, probabilities, ranking)

    def _score_shadows(self, assignment: Any, x: np.ndarray, names: list[str],
                       group: str | None) -> Any:
        def policy_of(key: Any) -> Any:
            live = self.registry.get(key)
            return None if live is None else live.policy

        return self.resolver.score_shadows(assignment, policy_of, x, names, rng=self.rng,
                                           group=group)

    def _from_row(self, row: Mapping[str, Any], req: RouteRequest) -> RouteResult:
        ranking = list(row["candidates"])
        scores = dict(zip(ranking, row["scores"], strict=False))
        probs = dict(zip(ranking, row["probabilities"], strict=False))
        model = row["model"]
        return RouteResult(
            decision_id=str(row["decision_id"]),
            model=model,
            propensity=float(row["propensity"]),
            score=float(scores.get(model, 0.0)),
            estimated_cost_usd=float(row["estimated_cost_usd"]),
            fallbacks=[
                RankedModel(n, float(scores[n]), float(probs[n]), 0.0)
                for n in ranking
                if n != model
            ],
            policy=row["policy_name"],
            policy_version=int(row["policy_version"]),
            experiment=row.get("experiment") or "",
            variant=row.get("variant") or "",
            route=row.get("route") or req.route,
        )

