"""Route budgets through the public API (issue #12): pacing, consistency, bad input."""

from __future__ import annotations

import json
import math
import random
import time

import grpc
import pytest
from typer.testing import CliRunner

from banditroute.service.cli import app
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, register_demo

#: Mean quality per demo model: dearer models answer better.
TRAFFIC = {
    "gpt-4o": 0.92,
    "gpt-4o-mini": 0.72,
    "llama-3.1-8b-instruct": 0.5,
}
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "llama-3.1-8b-instruct": (0.18, 0.18)}
IN_TOKENS, OUT_TOKENS = 500, 300


def _cost(model: str) -> float:
    price_in, price_out = PRICES[model]
    return (IN_TOKENS * price_in + OUT_TOKENS * price_out) / 1e6


def _put_route(server: InProcessServer, name: str = "paced", **budget: object) -> object:
    with grpc.insecure_channel(server.address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        md = server.admin_metadata
        admin.PutPolicy(admin_pb2.PutPolicyRequest(name="quality", algorithm="linucb", seed=1),
                        metadata=md)
        return admin.PutRoute(admin_pb2.PutRouteRequest(route=admin_pb2.RouteConfig(
            name=name, policy="quality", models=list(TRAFFIC), **budget)), metadata=md)


def _traffic(address: str, n: int, seed: int, route: str = "paced",
             until: float | None = None) -> list[router_pb2.RouteResponse]:
    rng = random.Random(seed)
    replies = []
    with grpc.insecure_channel(address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        for i in range(n):
            if until is not None and time.time() >= until:
                break
            reply = router.Route(router_pb2.RouteRequest(
                prompt=f"question {i % 40}: " + "word " * rng.randrange(20, 60), route=route))
            replies.append(reply)
            quality = min(1.0, max(0.0, TRAFFIC[reply.model] + rng.gauss(0, 0.1)))
            router.RecordOutcome(router_pb2.RecordOutcomeRequest(
                decision_id=reply.decision_id, quality=quality, input_tokens=IN_TOKENS,
                output_tokens=OUT_TOKENS, cost_usd=_cost(reply.model)))
    return replies


def _lam(server: InProcessServer, route: str = "paced") -> float:
    from datetime import UTC, datetime

    server.sync()
    status = server.app.follower.budgets.status("", route, datetime.now(UTC))
    assert status is not None
    return float(status.lam)


def test_budget_per_request_paces_mean_cost_of_late_decisions(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url)
    try:
        budget = 0.0015  # about a third of always-gpt-4o
        config = _put_route(server, budget_per_request_usd=budget)
        assert config.budget_per_request_usd == budget  # type: ignore[attr-defined]
        replies = _traffic(server.address, 600, seed=0)
        late = [_cost(r.model) for r in replies[300:]]
        mean = sum(late) / len(late)
        print(f"budget {budget}, mean cost of decisions 301-600 {mean:.6f} "
              f"({mean / budget:.3f} B), paced {sum(bool(r.pacing) for r in replies)}")
        assert 0.85 * budget <= mean <= 1.05 * budget
        assert any(r.pacing == "pacing" for r in replies)
        assert replies[-1].pacing_cost_weight > 0
        lam = _lam(server)
        metrics = server.app.metrics
        assert metrics.value("banditroute_pacing_lambda", route="paced") == lam
        spent = sum(metrics.value("banditroute_spend_usd_total", route="paced", model=m,
                                  variant="none") for m in TRAFFIC)
        assert spent == pytest.approx(sum(_cost(r.model) for r in replies))
        status = CliRunner().invoke(app, ["routes", "status", "paced", "--json",
                                          "--database-url", fresh_db_url])
        assert status.exit_code == 0, status.output
        row = json.loads(status.stdout)
        assert row["lambda"] == lam and row["total_requests"] == 600
        assert row["period_budget_spent"] is False  # a per-request budget has no period
        assert row["mean_spend_per_request_usd"] == pytest.approx(
            sum(_cost(r.model) for r in replies) / 600)
    finally:
        server.stop()


def test_routes_status_says_when_the_periods_budget_is_spent(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url)
    try:
        cheapest = min(TRAFFIC, key=_cost)
        _put_route(server, budget_usd=_cost(cheapest) / 2, budget_period="day",
                   budget_hard_cap=True)
        server.sync()  # the follower has the route's budget
        replies = _traffic(server.address, 4, seed=3)
        for r in replies:  # nothing fits: the cheapest by the decision's own estimates
            assert r.estimated_cost_usd <= min(f.estimated_cost_usd for f in r.fallbacks)
        db = ("--database-url", fresh_db_url)
        row = json.loads(CliRunner().invoke(app, ["routes", "status", "paced", "--json",
                                                  *db]).stdout)
        assert row["period_budget_spent"] is True and row["remaining_usd"] < 0
        text = CliRunner().invoke(app, ["routes", "status", "paced", *db])
        assert text.exit_code == 0, text.output
        assert "this period's budget is spent" in text.stdout
    finally:
        server.stop()


def test_budget_lambda_identical_across_workers_and_after_restart(fresh_db_url: str) -> None:
    register_demo(fresh_db_url)
    first = InProcessServer(fresh_db_url, snapshot_every_events=50)
    second = InProcessServer(fresh_db_url)
    try:
        _put_route(first, budget_per_request_usd=0.001)
        _traffic(first.address, 120, seed=1)
        _traffic(second.address, 120, seed=2)
        lam_first, lam_second = _lam(first), _lam(second)
        assert lam_first > 0
        assert lam_first == lam_second
    finally:
        second.stop()
        first.stop()
    restarted = InProcessServer(fresh_db_url)
    try:
        assert _lam(restarted) == lam_first
    finally:
        restarted.stop()


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"budget_per_request_usd": -0.01}, "budget_per_request_usd"),
        ({"budget_per_request_usd": math.nan}, "budget_per_request_usd"),
        ({"budget_usd": math.inf, "budget_period": "day"}, "budget_usd"),
        ({"budget_usd": -5.0, "budget_period": "day"}, "budget_usd"),
        ({"budget_usd": 5.0, "budget_period": "week"}, "budget_period"),
        ({"budget_usd": 5.0}, "budget_period"),
        ({"budget_hard_cap": True}, "budget_hard_cap"),
    ],
    ids=["negative-per-request", "nan-per-request", "inf-budget", "negative-budget",
         "unknown-period", "no-period", "cap-without-budget"],
)
def test_put_route_bad_budget_is_invalid_argument_and_changes_nothing(
        fresh_db_url: str, budget: dict, field: str) -> None:
    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url)
    try:
        _put_route(server, budget_per_request_usd=0.002)
        with grpc.insecure_channel(server.address) as channel:
            admin = admin_pb2_grpc.AdminStub(channel)
            before = admin.ListRoutes(admin_pb2.ListRoutesRequest(), metadata=server.admin_metadata)
            with pytest.raises(grpc.RpcError) as err:
                admin.PutRoute(admin_pb2.PutRouteRequest(route=admin_pb2.RouteConfig(
                    name="paced", policy="quality", models=["gpt-4o"], **budget)),
                    metadata=server.admin_metadata)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in (err.value.details() or "")
            after = admin.ListRoutes(admin_pb2.ListRoutesRequest(), metadata=server.admin_metadata)
            assert after == before
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--budget-per-request", "-1"), "budget_per_request_usd"),
        (("--budget-per-request", "nan"), "budget_per_request_usd"),
        (("--budget", "inf", "--budget-period", "day"), "budget_usd"),
        (("--budget", "10", "--budget-period", "fortnight"), "budget_period"),
        (("--hard-cap",), "budget_hard_cap"),
    ],
    ids=["negative", "nan", "inf", "unknown-period", "cap-alone"],
)
def test_cli_routes_put_bad_budget_exits_1_naming_the_field(fresh_db_url: str,
                                                            args: tuple[str, ...],
                                                            field: str) -> None:
    register_demo(fresh_db_url)
    db = ("--database-url", fresh_db_url)
    runner = CliRunner()
    ok = runner.invoke(app, ["routes", "put", "paced", "--policy", "default", "--budget",
                             "10", "--budget-period", "day", "--hard-cap", *db])
    assert ok.exit_code == 0, ok.output
    assert "budget $10/day (hard cap)" in ok.stdout
    before = runner.invoke(app, ["routes", "list", "--json", *db]).stdout
    bad = runner.invoke(app, ["routes", "put", "paced", "--policy", "default", *args, *db])
    assert bad.exit_code == 1
    assert field in bad.output
    assert runner.invoke(app, ["routes", "list", "--json", *db]).stdout == before


@pytest.mark.parametrize("hard_cap", [False, True], ids=["paced", "hard-cap"])
def test_period_budget_compressed_hour_ends_on_budget(fresh_db_url: str, hard_cap: bool) -> None:
    """A budget hour compressed into 12 s of wall clock (the book's clock). Paced: the hour
    ends within +-5% of its budget. Hard cap with a budget near the all-cheapest spend: the
    hour never overspends by more than a few requests' cost (the in-flight ones)."""
    register_demo(fresh_db_url)
    server = InProcessServer(fresh_db_url)
    try:
        _put_route(server, name="warm")
        start = time.time()
        warmup = _traffic(server.address, 10**6, seed=5, route="warm", until=start + 2.0)
        rate = len(warmup) / (time.time() - start)
        seconds = 12.0
        expected = rate * seconds
        share = 0.05 if hard_cap else 0.3
        budget = share * expected * _cost("gpt-4o")
        budget_args: dict[str, object] = {"budget_usd": budget, "budget_period": "hour"}
        if hard_cap:
            budget_args["budget_hard_cap"] = True
        _put_route(server, **budget_args)
        hour = 1_700_000_000.0 - 1_700_000_000.0 % 3600
        t0 = time.time() + 0.2
        server.app.follower.budgets.clock = lambda t: hour + (t - t0) * 3600.0 / seconds
        time.sleep(0.2)
        replies = _traffic(server.address, 10**6, seed=6, until=t0 + seconds)
        costs = [_cost(r.model) for r in replies]
        spend = sum(costs)
        cheapest = _cost("llama-3.1-8b-instruct")
        print(f"hard_cap={hard_cap} requests {len(replies)} (expected {expected:.0f}), "
              f"budget {budget:.4f}, spend {spend:.4f} ({spend / budget:.3f})")
        if not hard_cap:
            assert 0.95 * budget <= spend <= 1.05 * budget
        else:
            running, crossed = 0.0, len(costs)
            for i, c in enumerate(costs):
                running += c
                if running >= budget:
                    crossed = i + 1
                    break
            overspend = spend - budget - (len(costs) - crossed) * cheapest
            print(f"overspend beyond the cheapest model: {overspend:.5f} "
                  f"= {overspend / _cost('gpt-4o'):.2f} gpt-4o requests")
            assert overspend <= 3 * _cost("gpt-4o")
    finally:
        server.stop()
