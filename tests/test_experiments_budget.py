"""Experiments on a route with a budget (issue #12): the variants share the route's budget, and
the status (Admin API, CLI table and JSON) shows each variant's spend.

The route's controller is keyed by the route, not by the variant: one lambda prices every
variant's decisions, and every variant's outcomes are spent against it. The status's spend is
the sum of the realised ``cost_usd`` of each variant's outcomes (the live sums of
:mod:`banditroute.service.experiments.live`), checked here against what the client recorded.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from banditroute.service.core.route_budget import RouteBudget
from banditroute.service.experiments.cli import experiments_app
from banditroute.service.storage.database import create_engine
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import TEST_ADMIN_TOKEN, InProcessServer, register_demo

#: Mean quality per demo model: dearer models answer better (as in test_service_budgets.py).
TRAFFIC = {"gpt-4o": 0.92, "gpt-4o-mini": 0.72, "llama-3.1-8b-instruct": 0.5}
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "llama-3.1-8b-instruct": (0.18, 0.18)}
IN_TOKENS, OUT_TOKENS = 500, 300
BUDGET = 0.0015  # per request: about a third of always-gpt-4o


def _cost(model: str) -> float:
    price_in, price_out = PRICES[model]
    return (IN_TOKENS * price_in + OUT_TOKENS * price_out) / 1e6


@pytest.fixture
def server(fresh_db_url: str) -> Iterator[InProcessServer]:
    register_demo(fresh_db_url)
    srv = InProcessServer(fresh_db_url)
    try:
        yield srv
    finally:
        srv.stop()


def _setup(server: InProcessServer, route: str, experiment: str, **budget: object) -> None:
    md = server.admin_metadata
    with grpc.insecure_channel(server.address) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        for name, algorithm in (("quality", "linucb"), ("greedy", "epsilon_greedy"),
                                ("watcher", "thompson")):
            admin.PutPolicy(admin_pb2.PutPolicyRequest(name=name, algorithm=algorithm, seed=1),
                            metadata=md)
        admin.PutRoute(admin_pb2.PutRouteRequest(route=admin_pb2.RouteConfig(
            name=route, policy="quality", models=list(TRAFFIC), **budget)), metadata=md)
        admin.CreateExperiment(admin_pb2.CreateExperimentRequest(
            name=experiment, route=route, start=True, actor="pytest", variants=[
                admin_pb2.Variant(name="control", policy="quality", weight=50, control=True),
                admin_pb2.Variant(name="treatment", policy="greedy", weight=50),
                admin_pb2.Variant(name="watch", policy="watcher", shadow=True),
            ]), metadata=md)
    server.sync()


def _route(router: router_pb2_grpc.RouterStub, route: str, i: int,
           rng: random.Random) -> router_pb2.RouteResponse:
    return router.Route(router_pb2.RouteRequest(
        prompt=f"question {i % 40}: " + "word " * rng.randrange(20, 60), route=route,
        unit_id=f"user-{i}"))


def _outcome(router: router_pb2_grpc.RouterStub, reply: router_pb2.RouteResponse,
             rng: random.Random, cost: float) -> None:
    quality = min(1.0, max(0.0, TRAFFIC[reply.model] + rng.gauss(0, 0.1)))
    router.RecordOutcome(router_pb2.RecordOutcomeRequest(
        decision_id=reply.decision_id, quality=quality, input_tokens=IN_TOKENS,
        output_tokens=OUT_TOKENS, cost_usd=cost))


def _status(server: InProcessServer, name: str) -> admin_pb2.ExperimentStatus:
    with grpc.insecure_channel(server.address) as channel:
        return admin_pb2_grpc.AdminStub(channel).GetExperimentStatus(
            admin_pb2.GetExperimentStatusRequest(name=name), metadata=server.admin_metadata)


def test_experiment_variants_share_the_route_budget(server: InProcessServer,
                                                    fresh_db_url: str) -> None:
    """One controller for the route: its lambda is the fold of every variant's outcomes in log
    order (not of one variant's), it counts every variant's requests and spend, and it prices
    both variants' decisions; the experiment's spend per variant adds up to the route's."""
    _setup(server, "paced", "shared", budget_per_request_usd=BUDGET)
    rng = random.Random(0)
    spent: dict[str, float] = {}
    with grpc.insecure_channel(server.address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        for i in range(300):
            reply = _route(router, "paced", i, rng)
            assert reply.experiment == "shared"
            _outcome(router, reply, rng, _cost(reply.model))
            spent[reply.variant] = spent.get(reply.variant, 0.0) + _cost(reply.model)
    server.sync()
    assert set(spent) == {"control", "treatment"}

    book = server.app.follower.budgets
    statuses = book.statuses(datetime.now(UTC))
    assert list(statuses) == [("", "paced")]  # one controller, not one per variant
    live = statuses[("", "paced")]
    assert live.total_requests == 300
    assert live.total_spend_usd == pytest.approx(sum(spent.values()), rel=1e-9)

    # The live lambda is the fold of both variants' outcomes in log order, as BudgetBook does
    # it; one variant's outcomes alone would give another lambda.
    engine = create_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            log = conn.execute(text(
                "SELECT d.variant, d.created_at, o.cost_usd, d.pacing_cost_weight "
                "FROM outcomes o JOIN decisions d ON d.decision_id = o.decision_id "
                "AND d.created_at = o.decision_created_at WHERE d.route = 'paced' "
                "ORDER BY o.event_id")).all()
    finally:
        engine.dispose()
    assert len(log) == 300
    shared, control_only = (RouteBudget(budget_per_request_usd=BUDGET).pacer() for _ in "ab")
    for variant, created_at, cost, _ in log:
        shared.on_decision(created_at.timestamp(), cost)
        if variant == "control":
            control_only.on_decision(created_at.timestamp(), cost)
    assert shared.lam == live.lam > 0.0
    assert control_only.lam != pytest.approx(live.lam, rel=1e-3)
    # Both variants' decisions were priced by it (a positive cost weight once lambda rose).
    for variant in ("control", "treatment"):
        assert any(w > 0.0 for v, _, _, w in log if v == variant), variant

    status = _status(server, "shared")
    by = {v.variant: v for v in status.variants}
    assert status.budget_per_request_usd == BUDGET and not status.HasField("budget_usd")
    for variant in ("control", "treatment"):
        assert by[variant].spend_usd == pytest.approx(spent[variant], rel=1e-9)
        assert by[variant].spend_per_request_usd == pytest.approx(
            spent[variant] / by[variant].outcomes, rel=1e-9)
        assert math.isnan(by[variant].period_spend_usd) and math.isnan(by[variant].budget_share)
    assert math.isnan(by["watch"].spend_usd)  # a shadow serves nothing
    assert by["control"].spend_usd + by["treatment"].spend_usd == pytest.approx(
        live.total_spend_usd, rel=1e-9)


def _day(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _row(table: str, variant: str) -> list[str]:
    """The cells of ``variant``'s first row in ``table``."""
    for line in table.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == variant:
            return cells
    raise AssertionError(f"no row {variant!r} in\n{table}")


def _columns(table: str, second: str) -> tuple[list[str], str]:
    """The column names of the table whose header is ``variant`` then ``second``, and the text
    from that header on."""
    m = re.search(rf"^variant\s+{re.escape(second)}\s", table, re.M)
    assert m, table
    rest = table[m.start():]
    return re.split(r"\s{2,}", rest.splitlines()[0].strip()), rest


def test_experiment_status_shows_spend_per_variant_cli_and_admin(
    server: InProcessServer,
) -> None:
    """Seeded traffic with known costs on a route with a budget per request and per day: the
    Admin API, the CLI table and its --json show each variant's spend, spend per request, the
    day's spend and its share of the day's budget; outcomes recorded after a status (late, on
    decisions already counted) move them by exactly their cost."""
    budget_usd = 0.05
    _setup(server, "daily", "spendy", budget_per_request_usd=0.002, budget_usd=budget_usd,
           budget_period="day")
    rng = random.Random(1)
    replies: list[tuple[router_pb2.RouteResponse, float]] = []
    late: list[tuple[router_pb2.RouteResponse, float]] = []
    with grpc.insecure_channel(server.address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        for i in range(60):
            reply = _route(router, "daily", i, rng)
            cost = 0.001 * (1 + i % 3)
            if i % 6 == 5:
                late.append((reply, cost))  # its outcome comes after the first status
                continue
            _outcome(router, reply, rng, cost)
            replies.append((reply, cost))
    server.sync()

    def want(done: list[tuple[router_pb2.RouteResponse, float]]) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        for reply, cost in done:
            usd, n = out.get(reply.variant, (0.0, 0))
            out[reply.variant] = (usd + cost, n + 1)
        return out

    with server.app.engine.connect() as conn:
        made = {str(d): t for d, t in conn.execute(
            text("SELECT decision_id, created_at FROM decisions WHERE route = 'daily'"))}

    def check(done: list[tuple[router_pb2.RouteResponse, float]]) -> None:
        expected = want(done)
        assert set(expected) == {"control", "treatment"}
        before = datetime.now(UTC)
        status = _status(server, "spendy")
        after = datetime.now(UTC)
        assert status.budget_usd == budget_usd and status.budget_period == "day"
        start = status.period_start.ToDatetime(UTC)
        assert start in {_day(before), _day(after)}
        # The period's spend: of the decisions made since the period started (all of them,
        # unless the test ran over midnight UTC).
        in_day = want([(r, c) for r, c in done if made[r.decision_id] >= start])
        in_day = {v: in_day.get(v, (0.0, 0)) for v in expected}
        by = {v.variant: v for v in status.variants}
        for variant, (usd, n) in expected.items():
            v = by[variant]
            assert v.outcomes == n
            assert v.spend_usd == pytest.approx(usd, rel=1e-12)
            assert v.spend_per_request_usd == pytest.approx(usd / n, rel=1e-12)
            assert v.period_spend_usd == pytest.approx(in_day[variant][0], rel=1e-12)
            assert v.budget_share == pytest.approx(in_day[variant][0] / budget_usd, rel=1e-12)
        assert math.isnan(by["watch"].spend_usd)

        runner = CliRunner()
        common = ["--address", server.address, "--admin-token", TEST_ADMIN_TOKEN]
        table = runner.invoke(experiments_app, ["status", "spendy", *common])
        assert table.exit_code == 0, table.output
        main_cols, main = _columns(table.output, "role")
        budget_cols, block = _columns(table.output, "$/request")
        assert "spend $" in main_cols
        assert budget_cols == ["variant", "$/request", "x target", "this day $", "of budget"]
        assert "Budget of route daily, shared by the variants" in table.output
        for variant, (usd, n) in expected.items():
            cells = _row(main, variant)
            assert cells[main_cols.index("spend $")] == f"{usd:.6f}"
            day = in_day[variant][0]
            assert _row(block, variant) == [
                variant, f"{usd / n:.6f}", f"{usd / n / 0.002:.2f}", f"{day:.6f}",
                f"{day / budget_usd:.1%}"]
        assert _row(main, "watch")[main_cols.index("spend $")] == "-"
        # Every served variant together: what the route's controller holds to its target.
        usd = sum(u for u, _ in expected.values())
        n = sum(k for _, k in expected.values())
        day = sum(d for d, _ in in_day.values())
        assert _row(block, "(all)") == [
            "(all)", f"{usd / n:.6f}", f"{usd / n / 0.002:.2f}", f"{day:.6f}",
            f"{day / budget_usd:.1%}"]

        as_json = runner.invoke(experiments_app, ["status", "spendy", "--json", *common])
        assert as_json.exit_code == 0, as_json.output
        data = json.loads(as_json.output)
        assert data["budget_usd"] == budget_usd and data["budget_per_request_usd"] == 0.002
        rows = {v["variant"]: v for v in data["variants"]}
        for variant, (usd, n) in expected.items():
            assert rows[variant]["spend_usd"] == pytest.approx(usd, rel=1e-12)
            assert rows[variant]["spend_per_request_usd"] == pytest.approx(usd / n, rel=1e-12)
            assert rows[variant]["budget_share"] == pytest.approx(
                in_day[variant][0] / budget_usd, rel=1e-12)
        assert rows["watch"]["spend_usd"] is None

    check(replies)
    with grpc.insecure_channel(server.address) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        for reply, cost in late:
            _outcome(router, reply, rng, cost)
    server.sync()
    check(replies + late)
