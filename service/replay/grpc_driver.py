"""Replay through a running banditroute server, over the real gRPC API.

For each prompt (seeded random order) the driver calls ``Route`` with the dataset's
models as candidates, then ``RecordOutcome`` with the chosen model's recorded quality
and cost, exactly as a backend would. With an admin token it first registers the models
(``PutModel``), a policy (``PutPolicy`` with the algorithm, hyperparameters and cost
weight) and a route using them (``PutRoute``); without one, the route must exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from google.protobuf import struct_pb2

from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.runner import PolicySpec, reward_matrix

__all__ = ["GrpcReplayResult", "register_replay_route", "replay_over_grpc"]


@dataclass
class GrpcReplayResult:
    """What the server chose and what it cost, plus one log record per decision.

    ``order[t]`` is the dataset row streamed at position ``t`` and ``choices[t]`` the
    model column the server chose for it (as in
    :class:`~banditroute.service.replay.runner.RunResult`).
    """

    accuracy: float
    cost_per_query: float
    mean_reward: float
    regret: float
    shares: dict[str, float]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    order: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    choices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


def _admin_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def register_replay_route(channel: grpc.Channel, dataset: ReplayDataset, spec: PolicySpec,
                          cost_weight: float, route: str, seed: int,
                          admin_token: str | None) -> str:
    """Register the dataset's models, a policy and ``route``; returns the policy name."""
    from banditroute.v1 import admin_pb2, admin_pb2_grpc

    admin = admin_pb2_grpc.AdminStub(channel)
    meta = _admin_metadata(admin_token)
    for model in dataset.models:
        admin.PutModel(admin_pb2.PutModelRequest(model=admin_pb2.Model(
            id=model, provider="replay", enabled=True)), metadata=meta)
    hyper = struct_pb2.Struct()
    hyper.update(spec.hyperparameters)
    name = f"{route}-{spec.algorithm}"
    admin.PutPolicy(admin_pb2.PutPolicyRequest(
        name=name, algorithm=spec.algorithm, hyperparameters=hyper,
        reward=admin_pb2.RewardWeights(cost_weight=cost_weight), seed=seed), metadata=meta)
    admin.PutRoute(admin_pb2.PutRouteRequest(route=admin_pb2.RouteConfig(
        name=route, policy=name, models=list(dataset.models))), metadata=meta)
    return name


def replay_over_grpc(address: str, dataset: ReplayDataset, spec: PolicySpec, cost_weight: float,
                     seed: int = 0, route: str | None = None, admin_token: str | None = None,
                     api_key: str | None = None, register: bool = True,
                     progress: Callable[[int, int], None] | None = None,
                     timeout: float = 30.0, task_context: bool = True) -> GrpcReplayResult:
    """Stream ``dataset`` through the server at ``address`` (Route, then RecordOutcome).

    ``progress(done, total)`` is called after each prompt. ``task_context``: send each
    prompt's task label, where the dataset has one, as ``categorical_context={"task": ...}``.
    ``route`` defaults to a fresh ``replay-<hex>`` name so repeated runs do not share learned
    state.
    """
    from banditroute.v1 import router_pb2, router_pb2_grpc

    route = route or f"replay-{uuid.uuid4().hex[:8]}"
    rewards = reward_matrix(dataset, cost_weight)
    best = rewards.max(axis=1)
    order = np.random.default_rng(seed).permutation(dataset.n)
    index = {m: j for j, m in enumerate(dataset.models)}
    meta = (("x-api-key", api_key),) if api_key else ()
    quality = np.empty(dataset.n)
    cost = np.empty(dataset.n)
    got = np.empty(dataset.n)
    counts = np.zeros(dataset.k)
    choices = np.empty(dataset.n, dtype=np.int64)
    decisions: list[dict[str, Any]] = []
    with grpc.insecure_channel(address) as channel:
        if register:
            register_replay_route(channel, dataset, spec, cost_weight, route, seed, admin_token)
        stub = router_pb2_grpc.RouterStub(channel)
        contexts = dataset.categorical_contexts() if task_context else None
        for t, i in enumerate(order):
            response = stub.Route(router_pb2.RouteRequest(
                prompt=dataset.prompts[i], candidates=list(dataset.models), route=route,
                request_id=f"{route}-{seed}-{int(i)}",
                categorical_context=contexts[i] if contexts else {}),
                metadata=meta, timeout=timeout)
            j = index[response.model]
            stub.RecordOutcome(router_pb2.RecordOutcomeRequest(
                decision_id=response.decision_id, quality=float(dataset.quality[i, j]),
                cost_usd=float(dataset.cost[i, j])), metadata=meta, timeout=timeout)
            quality[t], cost[t], got[t] = dataset.quality[i, j], dataset.cost[i, j], rewards[i, j]
            counts[j] += 1
            choices[t] = j
            decisions.append({
                "prompt": dataset.prompts[i], "model": response.model,
                "propensity": response.propensity, "reward": float(rewards[i, j]),
                "candidates": list(dataset.models), "decision_id": response.decision_id,
            })
            if progress is not None:
                progress(t + 1, dataset.n)
    return GrpcReplayResult(
        accuracy=float(quality.mean()),
        cost_per_query=float(cost.mean()),
        mean_reward=float(got.mean()),
        regret=float((best[order] - got).sum()),
        shares={m: float(counts[j] / dataset.n) for m, j in index.items()},
        decisions=decisions,
        order=order,
        choices=choices,
    )
