"""The web dashboard against a real server with traffic seeded through the public gRPC API.

One server and database per module: traffic on the demo route ``default`` and on route
``dash`` with an experiment (control ``lin`` against treatment ``eps``). The numbers on the pages
are checked against the Admin API (``GetPolicyState``, ``GetExperimentStatus`` as the CLI
prints it) and the Prometheus metrics served on the same port.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from banditroute.service.cli import app as cli_app
from banditroute.service.dashboard import Dashboard, pages, parse_window, queries
from banditroute.service.dashboard import views as dash_views
from banditroute.service.dashboard.rollup import HourlyRollup
from banditroute.service.experiments.formatting import format_status
from banditroute.service.metrics import Metrics
from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
from tests.helpers import (
    TEST_ADMIN_TOKEN,
    InProcessServer,
    create_database,
    database_name,
    drop_database,
    free_port,
    put_models,
    register_demo,
)

ADMIN = (("authorization", f"Bearer {TEST_ADMIN_TOKEN}"),)
ROUTE = "dash"
BUDGETED = "dash-budget"
#: The budgeted route's budget: per request, and per day with the hard cap.
BUDGET = {"budget_per_request_usd": 0.002, "budget_usd": 1000.0, "budget_period": "day",
          "budget_hard_cap": True}
EXPERIMENT = "dash-exp"
SECRET_PROMPT = "do-not-show-this-prompt"
MODELS = ("model-a", "model-b", "model-c")
QUALITY = {"model-a": 0.9, "model-b": 0.3, "model-c": 0.6}


@dataclass
class Seeded:
    server: InProcessServer
    dashboard: Dashboard
    base: str
    decisions: int
    spend: dict[str, float]
    url: str


def _setup(admin: admin_pb2_grpc.AdminStub) -> None:
    put_models(admin, MODELS, ADMIN, provider="t", output_usd_per_mtok=2.0)
    for name, algorithm in (("lin", "linucb"), ("eps", "epsilon_greedy")):
        admin.PutPolicy(
            admin_pb2.PutPolicyRequest(name=name, algorithm=algorithm, seed=1), metadata=ADMIN
        )
    admin.PutRoute(
        admin_pb2.PutRouteRequest(
            route=admin_pb2.RouteConfig(name=ROUTE, policy="lin", models=list(MODELS))
        ),
        metadata=ADMIN,
    )
    admin.PutRoute(
        admin_pb2.PutRouteRequest(
            route=admin_pb2.RouteConfig(name=BUDGETED, policy="lin", models=list(MODELS), **BUDGET)
        ),
        metadata=ADMIN,
    )


def _seed(server: InProcessServer) -> tuple[int, dict[str, float]]:
    spend: dict[str, float] = {}
    n = 0
    with grpc.insecure_channel(server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        router = router_pb2_grpc.RouterStub(ch)
        _setup(admin)
        admin.CreateExperiment(
            admin_pb2.CreateExperimentRequest(
                name=EXPERIMENT,
                route=ROUTE,
                variants=[
                    admin_pb2.Variant(name="control", policy="lin", weight=50, control=True),
                    admin_pb2.Variant(name="treatment", policy="eps", weight=50),
                ],
                start=True,
                actor="pytest",
            ),
            metadata=ADMIN,
        )
        server.sync()
        for i in range(120):
            route = ROUTE if i % 3 else "default"
            resp = router.Route(
                router_pb2.RouteRequest(
                    prompt=f"{SECRET_PROMPT} {i}", route=route, unit_id=f"user-{i % 40}"
                )
            )
            n += 1
            if i % 10 == 9:
                continue  # some decisions never get an outcome
            cost = 0.001 * (1 + i % 4)
            router.RecordOutcome(
                router_pb2.RecordOutcomeRequest(
                    decision_id=resp.decision_id,
                    quality=QUALITY.get(resp.model, 0.5),
                    cost_usd=cost,
                    latency_ms=100.0 + i,
                )
            )
            spend[route] = spend.get(route, 0.0) + cost
        for i in range(30):  # the budgeted route: its spend is what the budget counts
            resp = router.Route(router_pb2.RouteRequest(prompt=f"{SECRET_PROMPT} b{i}",
                                                        route=BUDGETED))
            n += 1
            cost = {"model-a": 0.004, "model-b": 0.0005, "model-c": 0.001}[resp.model]
            router.RecordOutcome(
                router_pb2.RecordOutcomeRequest(
                    decision_id=resp.decision_id,
                    quality=QUALITY[resp.model],
                    cost_usd=cost,
                    latency_ms=50.0,
                )
            )
            spend[BUDGETED] = spend.get(BUDGETED, 0.0) + cost
    return n, spend


@pytest.fixture(scope="module")
def seeded(pg_server_url: str, template_db: str) -> Iterator[Seeded]:
    url = create_database(pg_server_url, prefix="br_dash", template=template_db)
    register_demo(url)
    port = free_port()
    server = InProcessServer(url, metrics_port=port, store_prompts=True)
    try:
        app = server.app
        dashboard = Dashboard(
            app.engine,
            registry=app.registry,
            budgets=app.follower.budgets,
            admin_token=TEST_ADMIN_TOKEN,
        )
        app.metrics.mount(dashboard)
        n, spend = _seed(server)
        server.sync()
        yield Seeded(server, dashboard, f"http://127.0.0.1:{port}", n, spend, url)
    finally:
        server.stop()
        drop_database(pg_server_url, database_name(url))


def _get(url: str, token: str | None = TEST_ADMIN_TOKEN, **headers: str) -> tuple[int, str, Any]:
    req = urllib.request.Request(url, headers=headers)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _field(page: str, row_attr: str, field: str) -> str:
    m = re.search(rf"<tr {row_attr}[^>]*>.*?data-field=\"{field}\">([^<]*)<", page, re.S)
    assert m, f"no {field} in row {row_attr}"
    return m.group(1)


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}") or (not labels and line.startswith(name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- numbers ---------------------------------------------------------------------------------
def test_dashboard_overview_decisions_per_model_equal_the_metrics(seeded: Seeded) -> None:
    status, page, _ = _get(seeded.base + "/?window=hour")
    assert status == 200
    _, metrics, _ = _get(seeded.base + "/metrics")
    shown: dict[str, int] = {}
    for model, n in re.findall(r'data-model="([^"]+)" data-decisions="(\d+)"', page):
        shown[html.unescape(model)] = shown.get(html.unescape(model), 0) + int(n)
    assert sum(shown.values()) == seeded.decisions
    for model, n in shown.items():
        assert n == _metric(metrics, "banditroute_decisions_total", model=model)
    for route in (ROUTE, "default"):
        assert float(_field(page, f'data-route="{route}"', "spend_usd")) == pytest.approx(
            seeded.spend[route], abs=1e-4
        )
    assert f'data-experiment="{EXPERIMENT}"' in page


def test_dashboard_budget_is_what_routes_status_prints(seeded: Seeded) -> None:
    """The route page shows the budget's state as ``banditroute routes status --json`` gives
    it, which folds the event log afresh in its own follower: two computations, one answer.
    The overview shows the same spend; a route without a budget shows none."""
    _, page, _ = _get(seeded.base + f"/routes/{BUDGETED}?window=hour")
    cli = CliRunner().invoke(
        cli_app, ["routes", "status", BUDGETED, "--json", "--database-url", seeded.url]
    )
    assert cli.exit_code == 0, cli.output
    row = json.loads(cli.stdout)
    assert row["budget"] == BUDGET
    assert "$0.002/request and $1000/day (hard cap)" in page
    # pace, projection and target move with the clock; the rest is the log's alone
    for key in ("period_spend_usd", "period_requests", "remaining_usd", "lambda",
                "total_spend_usd", "total_requests", "mean_spend_per_request_usd"):
        shown = re.search(rf'data-field="{key}">([^<]*)<', page)
        assert shown, key
        assert float(shown.group(1)) == pytest.approx(row[key], rel=1e-5, abs=1e-12), key
    assert row["total_requests"] == 30
    assert row["total_spend_usd"] == pytest.approx(seeded.spend[BUDGETED])
    assert re.search(r'data-field="period_budget_spent">no<', page)
    _, overview, _ = _get(seeded.base + "/?window=hour")
    spent = _field(overview, f'data-route="{BUDGETED}"', "budget_period_spend_usd")
    assert float(spent) == pytest.approx(row["period_spend_usd"], abs=1e-4)
    mean = _field(overview, f'data-route="{BUDGETED}"', "budget_mean_spend_usd")
    assert float(mean) == pytest.approx(seeded.spend[BUDGETED] / 30, abs=1e-6)
    assert re.search(rf'<tr data-route="{ROUTE}"[^>]*>.*?<span class="muted">none</span>',
                     overview, re.S)
    _, unbudgeted, _ = _get(seeded.base + f"/routes/{ROUTE}?window=hour")
    assert "<h2>Budget</h2>" not in unbudgeted
    assert "budget per request" in page and "budget per request" not in unbudgeted


def test_dashboard_budget_without_a_controller_shows_the_configuration(seeded: Seeded) -> None:
    """A dashboard given no budget controllers (or before its follower has one for the route)
    still shows the route's budget as configured, and says that it has no state for it."""
    engine = seeded.server.app.engine
    window, now = parse_window("hour"), datetime.now(UTC)
    page = dash_views.route_page(engine, None, "", BUDGETED, window, now)
    assert page.budget is not None and page.budget.status is None
    text_ = pages.route_html(page)
    assert "$0.002/request and $1000/day (hard cap)" in text_
    assert "no controller state" in text_ and 'data-field="lambda"' not in text_
    overview = pages.overview_html(dash_views.overview(engine, window, now))
    assert "(no state here yet)" in overview


def test_dashboard_recent_decisions_say_when_the_budget_changed_the_choice(
    seeded: Seeded,
) -> None:
    """Each recent decision's budget cell is its ``decisions.pacing``: paced, capped or empty."""
    _, page, _ = _get(seeded.base + f"/routes/{BUDGETED}?window=hour")
    shown = re.findall(r'<td data-field="pacing">([^<]*)</td>', page)
    with seeded.server.app.engine.connect() as conn:
        stored = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT pacing FROM decisions WHERE route = :r "
                    "ORDER BY decision_id DESC LIMIT 25"
                ),
                {"r": BUDGETED},
            )
        ]
    assert len(shown) == len(stored) == 25
    assert shown == [{"": "", "pacing": "paced", "cap": "capped"}[p] for p in stored]


def test_dashboard_learnt_state_equals_get_policy_state(seeded: Seeded) -> None:
    status, page, _ = _get(seeded.base + f"/routes/{ROUTE}?window=day")
    assert status == 200
    with grpc.insecure_channel(seeded.server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        for policy in ("lin", "eps"):
            state = admin.GetPolicyState(
                admin_pb2.GetPolicyStateRequest(name=policy), metadata=ADMIN
            )
            version = state.policy.version
            assert state.arms
            for arm in state.arms:
                row = f'data-policy="{policy}" data-version="{version}" data-model="{arm.model}"'
                assert int(_field(page, row, "updates")) == arm.updates
                shown = _field(page, row, "mean_reward")
                if arm.updates:
                    assert float(shown) == pytest.approx(arm.mean_reward, abs=6e-5)


@pytest.mark.parametrize("window", ["hour", "month"])
def test_dashboard_route_traffic_equals_the_decisions_served(seeded: Seeded, window: str) -> None:
    _, page, _ = _get(seeded.base + f"/routes/{ROUTE}?window={window}")
    served = sum(
        int(n)
        for n in re.findall(
            r'<tr data-model="[^"]+"><td>[^<]*</td><td class="num" data-field="decisions">(\d+)<',
            page,
        )
    )
    assert served == sum(1 for i in range(120) if i % 3)


def test_dashboard_experiment_status_is_the_cli_table(seeded: Seeded) -> None:
    status, page, _ = _get(seeded.base + f"/experiments/{EXPERIMENT}?window=hour")
    assert status == 200
    with grpc.insecure_channel(seeded.server.address) as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        st = admin.GetExperimentStatus(
            admin_pb2.GetExperimentStatusRequest(name=EXPERIMENT), metadata=ADMIN
        )
    m = re.search(r'<pre class="status">(.*?)</pre>', page, re.S)
    assert m and html.unescape(m.group(1)) == format_status(st)
    assert "create" in page or "start" in page  # audit events listed


def test_dashboard_experiment_spend_per_variant_is_the_admin_spend(seeded: Seeded) -> None:
    """The experiment page's status table has each variant's spend, the Admin API's
    ``spend_usd``; together they are what the seed spent on the experiment's route (every
    request there is in the experiment)."""
    _, page, _ = _get(seeded.base + f"/experiments/{EXPERIMENT}?window=hour")
    with grpc.insecure_channel(seeded.server.address) as ch:
        st = admin_pb2_grpc.AdminStub(ch).GetExperimentStatus(
            admin_pb2.GetExperimentStatusRequest(name=EXPERIMENT), metadata=ADMIN
        )
    m = re.search(r'<pre class="status">(.*?)</pre>', page, re.S)
    assert m
    lines = html.unescape(m.group(1)).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("variant "))
    columns = re.split(r"\s{2,}", lines[header].strip())
    spend = {}
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        spend[cells[0]] = cells[columns.index("spend $")]
    admin = {v.variant: v.spend_usd for v in st.variants}
    assert set(spend) == set(admin) == {"control", "treatment"}
    for variant, usd in admin.items():
        assert spend[variant] == f"{usd:.6f}"
    assert sum(admin.values()) == pytest.approx(seeded.spend[ROUTE], rel=1e-9)


def test_dashboard_reward_difference_ends_at_the_status_difference(seeded: Seeded) -> None:
    app = seeded.server.app
    now = datetime.now(UTC)
    data = dash_views.experiment_page(app.engine, EXPERIMENT, parse_window("hour"), now)
    (series,) = data.diffs
    last = [i for i, v in enumerate(series.estimate) if v is not None][-1]
    want = next(v for v in data.status.variants if v.variant.name == "treatment")
    diff = want.reward_diff_vs_control
    assert diff is not None
    assert series.estimate[last] == pytest.approx(diff.estimate, abs=1e-9)
    if math.isfinite(diff.low):
        assert series.low[last] == pytest.approx(diff.low, abs=1e-9)
        assert series.high[last] == pytest.approx(diff.high, abs=1e-9)


def test_dashboard_charts_have_data_and_never_show_the_prompt(seeded: Seeded) -> None:
    for path in ("/", f"/routes/{ROUTE}", f"/experiments/{EXPERIMENT}", "/routes/default"):
        status, page, _ = _get(seeded.base + path + "?window=hour")
        assert status == 200
        assert SECRET_PROMPT not in page
        for points in re.findall(r'data-points="(\d+)"', page):
            assert int(points) > 0, path
    _, page, _ = _get(seeded.base + f"/routes/{ROUTE}?window=hour")
    assert len(re.findall(r'data-points="(\d+)"', page)) == 3
    assert page.count('class="marker"') >= 2  # lin and eps versions marked


def _sorted_rows(rows: list[Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r.bucket,
            r.tenant,
            r.route,
            r.model,
            r.policy,
            r.policy_version,
            r.decisions,
            r.outcomes,
            round(r.reward_sum, 9),
            round(r.cost_sum, 9),
            r.latency_n,
        )
        for r in rows
    )


@pytest.mark.parametrize("window", ["day", "week", "month"])
def test_dashboard_rollup_equals_the_raw_rows(seeded: Seeded, window: str) -> None:
    engine = seeded.server.app.engine
    rollup = HourlyRollup(engine)
    rollup.refresh()
    now = datetime.now(UTC)
    w = parse_window(window)
    with engine.connect() as conn:
        raw = queries.decisions_by_bucket(conn, w.since(now), w.stride)
    assert _sorted_rows(rollup.rows(w.since(now), w.stride)) == _sorted_rows(raw)
    assert sum(r.decisions for r in raw) == seeded.decisions


def test_dashboard_rollup_advances_with_new_events(seeded: Seeded) -> None:
    rollup = seeded.dashboard.rollup
    assert rollup is not None
    rollup.refresh()  # built (or advanced) now
    before = rollup.position
    with grpc.insecure_channel(seeded.server.address) as ch:
        router = router_pb2_grpc.RouterStub(ch)
        for i in range(5):
            resp = router.Route(router_pb2.RouteRequest(prompt=f"more {i}", route=ROUTE))
            router.RecordOutcome(
                router_pb2.RecordOutcomeRequest(
                    decision_id=resp.decision_id, quality=0.5, cost_usd=0.01, latency_ms=10.0
                )
            )
    seeded.decisions += 5
    seeded.spend[ROUTE] += 0.05
    seeded.server.sync()
    _, page, _ = _get(seeded.base + "/?window=week")  # refreshes the rollup
    assert rollup.position > before
    now = datetime.now(UTC)
    w = parse_window("week")
    with seeded.server.app.engine.connect() as conn:
        raw = queries.decisions_by_bucket(conn, w.since(now), w.stride)
    assert _sorted_rows(rollup.rows(w.since(now), w.stride)) == _sorted_rows(raw)
    assert float(_field(page, f'data-route="{ROUTE}"', "spend_usd")) == pytest.approx(
        seeded.spend[ROUTE], abs=1e-4
    )


# -- access -----------------------------------------------------------------------------------
def test_dashboard_refuses_without_the_token(seeded: Seeded) -> None:
    for path in ("/", f"/routes/{ROUTE}", f"/experiments/{EXPERIMENT}"):
        status, page, _ = _get(seeded.base + path, token=None)
        assert status == 401 and 'name="token"' in page
        assert _get(seeded.base + path, token="wrong")[0] == 401
    assert _get(seeded.base + "/?token=wrong", token=None)[0] == 401


def test_dashboard_token_in_the_url_sets_a_cookie_and_redirects(seeded: Seeded) -> None:
    status, _, headers = _get(
        seeded.base + f"/routes/{ROUTE}?window=week&token={TEST_ADMIN_TOKEN}", token=None
    )
    assert status == 303
    assert headers["Location"] == f"/routes/{ROUTE}?window=week"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert TEST_ADMIN_TOKEN not in cookie and "HttpOnly" in headers["Set-Cookie"]
    assert _get(seeded.base + "/", token=None, Cookie=cookie)[0] == 200
    assert _get(seeded.base + "/", token=None, Cookie=cookie + "x")[0] == 401


def test_dashboard_login_form_sets_the_cookie(seeded: Seeded) -> None:
    req = urllib.request.Request(
        seeded.base + "/login", data=f"token={TEST_ADMIN_TOKEN}".encode(), method="POST"
    )
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=10)
    assert err.value.code == 303 and "banditroute_dashboard=" in err.value.headers["Set-Cookie"]


def test_dashboard_metrics_still_served_next_to_it(seeded: Seeded) -> None:
    status, text, _ = _get(seeded.base + "/metrics", token=None)
    assert status == 200 and "banditroute_decisions_total" in text


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/routes/no-such-route", 404),
        ("/routes/dash?tenant=nobody", 404),
        ("/experiments/no-such-experiment", 404),
        ("/nowhere", 404),
        ("/routes/", 404),
        ("/?window=year", 400),
        (f"/routes/{ROUTE}?window=%00%ff", 400),
        ("/experiments/dash-exp?window=", 200),
        ("/routes/%E2%9C%93%00", 404),
    ],
    ids=lambda v: str(v),
)
def test_dashboard_bad_input_gets_a_page_not_a_500(seeded: Seeded, path: str, status: int) -> None:
    got, page, headers = _get(seeded.base + path)
    assert got == status
    assert headers["Content-Type"].startswith("text/html")
    assert "Traceback" not in page and "sqlalchemy" not in page.lower()


def test_dashboard_is_read_only(seeded: Seeded) -> None:
    req = urllib.request.Request(seeded.base + "/", data=b"x", method="POST")
    req.add_header("Authorization", f"Bearer {TEST_ADMIN_TOKEN}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 405


def test_dashboard_without_a_token_configured_is_open(seeded: Seeded) -> None:
    app = seeded.server.app
    metrics = Metrics()
    port = metrics.serve(free_port())
    metrics.mount(Dashboard(app.engine))
    status, page, _ = _get(f"http://127.0.0.1:{port}/?window=month", token=None)
    assert status == 200 and f'data-route="{ROUTE}"' in page


def test_dashboard_database_down_is_a_503_page(seeded: Seeded) -> None:
    from sqlalchemy import create_engine

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    metrics = Metrics()
    port = metrics.serve(free_port())
    metrics.mount(Dashboard(engine))
    status, page, _ = _get(f"http://127.0.0.1:{port}/", token=None)
    assert status == 503 and "Traceback" not in page


def test_dashboard_window_buckets_cover_the_window() -> None:
    now = datetime(2026, 11, 30, 12, 34, tzinfo=UTC)
    for name in ("hour", "day", "week", "month"):
        w = parse_window(name)
        starts = w.bucket_starts(now)
        assert starts[0] <= w.since(now) < starts[0] + w.stride
        assert starts[-1] <= now < starts[-1] + w.stride
        assert all(b - a == w.stride for a, b in itertools.pairwise(starts))
    assert parse_window("month").span == timedelta(days=30)


def test_dashboard_works_when_grpc_uses_tls(fresh_db_url: str, tmp_path: Any) -> None:
    """gRPC over TLS: the dashboard (plain HTTP on the metrics port) shows the TLS traffic."""
    from tests.tls_certs import make_pki

    pki = make_pki(tmp_path)
    register_demo(fresh_db_url)
    port = free_port()
    server = InProcessServer(
        fresh_db_url,
        metrics_port=port,
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
    )
    try:
        app = server.app
        app.metrics.mount(
            Dashboard(app.engine, registry=app.registry, admin_token=TEST_ADMIN_TOKEN)
        )
        creds = grpc.ssl_channel_credentials(root_certificates=pki.ca.cert.read_bytes())
        with grpc.secure_channel(server.address, creds) as ch:
            router = router_pb2_grpc.RouterStub(ch)
            for i in range(3):
                router.Route(router_pb2.RouteRequest(prompt=f"over TLS {i}"), timeout=30)
        server.sync()
        status, page, _ = _get(f"http://127.0.0.1:{port}/?window=hour")
        assert status == 200
        assert _field(page, 'data-route="default"', "decisions") == "3"
        assert _get(f"http://127.0.0.1:{port}/", token=None)[0] == 401
    finally:
        server.stop()


def test_metrics_port_answers_metrics_everywhere_until_a_dashboard_is_mounted() -> None:
    metrics = Metrics()
    metrics.decision("m")
    port = metrics.serve(free_port())
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/metrics"):
        status, text, _ = _get(base + path, token=None)
        labels = 'model="m",policy="none",route="default",variant="none"'
        assert status == 200 and f"banditroute_decisions_total{{{labels}}} 1.0" in text

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        start("200 OK", [("Content-Type", "text/plain")])
        return [b"mounted"]

    metrics.mount(app)
    assert _get(base + "/", token=None)[1] == "mounted"
    assert "banditroute_decisions_total" in _get(base + "/metrics", token=None)[1]
    metrics.mount(None)
    assert "banditroute_decisions_total" in _get(base + "/", token=None)[1]
