"""Benchmark of the dashboard over 1,000,000 decisions: time to answer each page.

Run ``python benchmarks/dashboard.py`` (options: ``--database-url``, ``--decisions``,
``--repeat``); prints ONE flat JSON object and writes ``benchmarks/results/dashboard.json``.

Method: a temporary database (a private embedded PostgreSQL under /tmp unless
``--database-url`` names a server, on which a temporary database is created and dropped) is
migrated, the demo pool registered and monthly ``decisions`` partitions created as
``banditroute db maintain`` does. ``--decisions`` decisions spread uniformly over the last 30
days are generated in PostgreSQL with ``generate_series`` (ids are UUIDv7 of their
``created_at``, as the server writes them): 90% on route ``default``, 10% on route ``small``,
five models, two policy versions (the second from 10 days ago); 90% of them get an outcome. The
decisions of the last 7 days on ``default`` (about 210,000) belong to a running experiment
``bench-exp`` (control 50%, treatment 50%). Then ``VACUUM ANALYZE`` (what autovacuum does).

Each page is fetched over HTTP from the metrics port of a :class:`Metrics` server with the
:class:`Dashboard` mounted (the same code path as ``banditroute serve``): once cold, then
``--repeat`` times; the JSON has the cold time, the median and the maximum of the warm ones, in
seconds, per page and window.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from banditroute.service.core.demo import register_demo_pool  # noqa: E402
from banditroute.service.dashboard import Dashboard, parse_window  # noqa: E402
from banditroute.service.dashboard.queries import experiment_rewards_by_bucket  # noqa: E402
from banditroute.service.experiments.assignment import VariantSpec  # noqa: E402
from banditroute.service.experiments.live import forget_all  # noqa: E402
from banditroute.service.experiments.manager import ExperimentManager  # noqa: E402
from banditroute.service.experiments.stats import experiment_status, yardstick  # noqa: E402
from banditroute.service.metrics import Metrics  # noqa: E402
from banditroute.service.storage.database import create_engine  # noqa: E402
from banditroute.service.storage.partitions import ensure_decision_partitions  # noqa: E402
from tests.helpers import free_port, migrated_database, write_benchmark_result  # noqa: E402

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku", "llama-3.1-8b-instruct")

# One INSERT ... SELECT from generate_series: the id's first 48 bits are created_at in ms.
_DECISIONS = """
INSERT INTO decisions (decision_id, created_at, event_id, tenant, route, policy_name,
  policy_version, experiment, variant, model, propensity, candidates, scores, probabilities,
  estimated_cost_usd, features, prompt_hash)
SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
       to_timestamp(ms / 1000.0), nextval('event_ids'), '',
       CASE WHEN i % 10 = 0 THEN 'small' ELSE 'default' END,
       'default', CASE WHEN ms < :v2_ms THEN 1 ELSE 2 END,
       CASE WHEN i % 10 <> 0 AND ms >= :exp_ms THEN 'bench-exp' ELSE '' END,
       CASE WHEN i % 10 <> 0 AND ms >= :exp_ms
            THEN CASE WHEN i % 2 = 0 THEN 'control' ELSE 'treatment' END ELSE '' END,
       (CAST(:models AS text[]))[1 + (i * 7 + (i / 3)) % 5], 0.2 + 0.6 * random(),
       CAST(:models AS text[]),
       ARRAY[0.5, 0.4, 0.3, 0.2, 0.1], ARRAY[0.2, 0.2, 0.2, 0.2, 0.2], 0.001 * random(),
       '\\x00'::bytea, '\\x00'::bytea
FROM (
  SELECT i, md5(i::text) AS h,
         (:end_ms - floor(random() * :span_ms))::bigint AS ms
  FROM generate_series(1, :n) AS i
) g
"""

_OUTCOMES = """
INSERT INTO outcomes (event_id, decision_id, decision_created_at, tenant, quality, success,
  input_tokens, output_tokens, cost_usd, latency_ms, error, reward)
SELECT nextval('event_ids'), d.decision_id, d.created_at, '', q, true, 200, 100,
       0.002 * random(), 200 + 800 * random(), '', q - 0.01
FROM (SELECT decision_id, created_at, event_id, random() AS q FROM decisions) d
WHERE d.event_id % 10 <> 0
"""


_LATE_RATINGS = """
INSERT INTO feedback (event_id, decision_id, decision_created_at, tenant, feedback_key, rating)
SELECT nextval('event_ids'), o.decision_id, o.decision_created_at, '', 'source:late', random()
FROM outcomes o
JOIN decisions d ON d.decision_id = o.decision_id AND d.created_at = o.decision_created_at
WHERE d.experiment = 'bench-exp'
LIMIT 1000
"""
_NEW_DECISIONS = """
INSERT INTO decisions (decision_id, created_at, event_id, tenant, route, policy_name,
  policy_version, experiment, variant, model, propensity, candidates, scores, probabilities,
  estimated_cost_usd, features, prompt_hash)
SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
       to_timestamp(ms / 1000.0), nextval('event_ids'), '', 'default', 'default', 2, 'bench-exp',
       CASE WHEN i % 2 = 0 THEN 'control' ELSE 'treatment' END, 'gpt-4o', 0.5,
       ARRAY['gpt-4o', 'gpt-4o-mini'], ARRAY[0.5, 0.4], ARRAY[0.5, 0.5], 0.001, '\\x00'::bytea,
       '\\x00'::bytea
FROM (
  SELECT i, md5(random()::text) AS h, floor(extract(epoch FROM now()) * 1000)::bigint AS ms
  FROM generate_series(1, 1000) AS i
) g
"""
_NEW_OUTCOMES = """
INSERT INTO outcomes (event_id, decision_id, decision_created_at, tenant, quality, success,
  input_tokens, output_tokens, cost_usd, latency_ms, error, reward)
SELECT nextval('event_ids'), d.decision_id, d.created_at, '', random(), true, 200, 100,
       0.002 * random(), 200 + 800 * random(), '', 0.5
FROM decisions d
WHERE d.experiment = 'bench-exp' AND d.created_at >= now() - interval '1 minute'
  AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_id = d.decision_id)
"""


def _row_by_row(engine: Any, view: Any) -> None:
    """The status as computed before the live sums: every scored decision read into Python
    (the newest 200,000, as then) for the off-policy estimates."""
    from banditroute.service.experiments.stats import logged_rows, off_policy_estimates

    rows = logged_rows(engine, view.name, yardstick(engine, view), limit=200_000)
    for v in view.variants:
        off_policy_estimates(rows, v)


def _seed(url: str, n: int) -> None:
    register_demo_pool(create_engine(url))
    engine = create_engine(url)
    now_ms = int(time.time() * 1000)
    day = 86_400_000
    with engine.begin() as conn:
        ensure_decision_partitions(conn, now=datetime.now(UTC) - timedelta(days=31), months_ahead=3)
        conn.execute(
            text(
                "INSERT INTO policies (name, version, algorithm, cost_weight) "
                "SELECT 'default', 2, 'linucb', 10.0 WHERE NOT EXISTS "
                "(SELECT 1 FROM policies WHERE name = 'default' AND version = 2)"
            )
        )
        conn.execute(
            text("INSERT INTO policies (name, version, algorithm) VALUES ('treat', 1, 'thompson')")
        )
        conn.execute(text("UPDATE routes SET policy_version = 0"))
        conn.execute(
            text("INSERT INTO routes (tenant, name, policy_name) VALUES ('', 'small', 'default')")
        )
    ExperimentManager(engine).create(
        "bench-exp",
        "",
        "default",
        [
            VariantSpec("control", "default", 2, 50.0, control=True),
            VariantSpec("treatment", "treat", 1, 50.0),
        ],
        start=True,
        actor="benchmark",
    )
    with engine.begin() as conn:
        # The experiment started 8 days ago (its decisions are the last 7 days').
        conn.execute(
            text(
                "UPDATE experiments SET created_at = now() - interval '8 days', "
                "started_at = now() - interval '8 days'"
            )
        )
        conn.execute(
            text(_DECISIONS),
            {
                "n": n,
                "end_ms": now_ms,
                "span_ms": 30 * day,
                "v2_ms": now_ms - 10 * day,
                "exp_ms": now_ms - 7 * day,
                "models": list(MODELS),
            },
        )
        conn.execute(text(_OUTCOMES))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _fetch(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        body = resp.read()
        if resp.status != 200 or (b"data-points" not in body and b"routes" not in body):
            raise RuntimeError(f"{url}: {resp.status}")
    return time.perf_counter() - t0


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _measure(url: str, repeat: int) -> dict[str, Any]:
    engine = create_engine(url, pool_size=4)
    out: dict[str, Any] = {}
    servers = {}
    for mode in ("raw", "rollup"):
        metrics = Metrics()
        port = metrics.serve(free_port())
        dashboard = Dashboard(engine, rollup=mode == "rollup")
        metrics.mount(dashboard)
        servers[mode] = f"http://127.0.0.1:{port}"
        if dashboard.rollup is not None:
            build, _ = _timed(dashboard.rollup.refresh)
            out["rollup_build_s"] = round(build, 3)
            print(f"rollup build: {build:.3f}s", file=sys.stderr)
            # What the first request starts in the background: the experiments' live sums.
            build, _ = _timed(lambda d=dashboard: d.warm_experiments(wait=True))
            out["experiment_build_s"] = round(build, 3)
            print(f"experiment live sums build: {build:.3f}s", file=sys.stderr)
    pages = {"overview": "/", "route": "/routes/default", "route_small": "/routes/small"}
    for name, path in pages.items():
        for window in ("hour", "day", "week", "month"):
            key = f"{name}_{window}"
            if window != "hour":  # the hour window is always read from the raw rows
                raw = _fetch(f"{servers['raw']}{path}?window={window}")
                out[f"{key}_raw_s"] = round(raw, 4)
            url_w = f"{servers['rollup']}{path}?window={window}"
            cold = _fetch(url_w)
            warm = [_fetch(url_w) for _ in range(repeat)]
            out[f"{key}_first_s"] = round(cold, 4)
            out[f"{key}_median_s"] = round(statistics.median(warm), 4)
            out[f"{key}_max_s"] = round(max(warm), 4)
            print(
                f"{key}: first {cold:.3f}s, median {statistics.median(warm):.3f}s, "
                f"max {max(warm):.3f}s",
                file=sys.stderr,
            )
    # The experiment page: the status (banditroute.service.experiments.stats, what
    # GetExperimentStatus computes, from the live sums built above) and the difference over time.
    view = ExperimentManager(engine).get("bench-exp", events=True)
    status_s, _ = _timed(lambda: experiment_status(engine, view))
    out["experiment_status_s"] = round(status_s, 4)
    now = datetime.now(UTC)
    for window in ("hour", "day", "week", "month"):
        url_w = f"{servers['rollup']}/experiments/bench-exp?window={window}"
        cold = _fetch(url_w)
        warm = [_fetch(url_w) for _ in range(repeat)]
        key = f"experiment_{window}"
        out[f"{key}_first_s"] = round(cold, 4)
        out[f"{key}_median_s"] = round(statistics.median(warm), 4)
        out[f"{key}_max_s"] = round(max(warm), 4)
        w = parse_window(window)
        with engine.connect() as conn:
            raw_series_s, _ = _timed(
                lambda w=w, conn=conn: experiment_rewards_by_bucket(
                    conn,
                    "bench-exp",
                    yardstick(engine, view),
                    w.since(now),
                    w.stride,
                    started=view.created_at,
                )
            )
        out[f"{key}_raw_series_s"] = round(raw_series_s, 3)
        print(
            f"{key}: first {cold:.3f}s, median {statistics.median(warm):.3f}s, "
            f"max {max(warm):.3f}s (raw series query {raw_series_s:.3f}s)",
            file=sys.stderr,
        )
    # Live traffic: 1,000 ratings of scored decisions (each retracts and re-adds a reward) and
    # 1,000 new decisions with outcomes, then the page again.
    with engine.begin() as conn:
        conn.execute(text(_LATE_RATINGS))
        conn.execute(text(_NEW_DECISIONS))
        conn.execute(text(_NEW_OUTCOMES))
    url_w = f"{servers['rollup']}/experiments/bench-exp?window=week"
    out["experiment_week_after_2000_events_s"] = round(_fetch(url_w), 4)
    # The previous computation (every scored row into Python, for comparison) and a page in a
    # process whose sums are not built yet (a restart before the background build is done).
    out["experiment_status_row_by_row_s"] = round(_timed(lambda: _row_by_row(engine, view))[0], 3)
    forget_all()
    out["experiment_week_unbuilt_s"] = round(_fetch(url_w), 4)
    print(
        f"status {status_s:.4f}s; after 2,000 events "
        f"{out['experiment_week_after_2000_events_s']:.3f}s; row by row "
        f"{out['experiment_status_row_by_row_s']:.3f}s; unbuilt "
        f"{out['experiment_week_unbuilt_s']:.3f}s",
        file=sys.stderr,
    )
    engine.dispose()
    return out


# -- screenshots from a real run ------------------------------------------------------------
_QUALITY = {
    "gpt-4o": 0.86,
    "gpt-4o-mini": 0.74,
    "claude-3-5-sonnet": 0.88,
    "claude-3-haiku": 0.70,
    "llama-3.1-8b-instruct": 0.58,
}


def _real_run(out_dir: Path, minutes: float, rate: float) -> None:
    """Run a real server (embedded PostgreSQL, gRPC on 127.0.0.1) with simulated traffic for
    ``minutes``, then screenshot each dashboard page in headless Chromium into ``out_dir``.

    Route ``default`` (the demo LinUCB policy; a new policy version with a higher cost weight
    after 60% of the run) and route ``support`` (Thompson sampling over three models; after
    30% of the run an experiment against epsilon-greedy, 50/50). Each request gets an outcome
    whose quality is the model's (plus noise), and one in five a user rating.
    """
    import random

    import grpc
    from playwright.sync_api import sync_playwright

    from banditroute.v1 import admin_pb2, admin_pb2_grpc, router_pb2, router_pb2_grpc
    from tests.helpers import TEST_ADMIN_TOKEN, InProcessServer, register_demo

    admin_md = (("authorization", f"Bearer {TEST_ADMIN_TOKEN}"),)
    with migrated_database(None, "br_shots", "banditroute-shots-") as (url, _):
        server = None
        try:
            register_demo(url)
            port = free_port()
            server = InProcessServer(url, metrics_port=port)
            app = server.app
            app.metrics.mount(
                Dashboard(app.engine, registry=app.registry, admin_token=TEST_ADMIN_TOKEN)
            )
            rng = random.Random(7)
            support = ["gpt-4o", "claude-3-haiku", "llama-3.1-8b-instruct"]
            with grpc.insecure_channel(server.address) as ch:
                admin = admin_pb2_grpc.AdminStub(ch)
                router = router_pb2_grpc.RouterStub(ch)
                admin.PutPolicy(
                    admin_pb2.PutPolicyRequest(name="support-ts", algorithm="thompson", seed=1),
                    metadata=admin_md,
                )
                admin.PutPolicy(
                    admin_pb2.PutPolicyRequest(
                        name="support-eps", algorithm="epsilon_greedy", seed=1
                    ),
                    metadata=admin_md,
                )
                admin.PutRoute(
                    admin_pb2.PutRouteRequest(
                        route=admin_pb2.RouteConfig(
                            name="support", policy="support-ts", models=support
                        )
                    ),
                    metadata=admin_md,
                )
                t0 = time.monotonic()
                end = t0 + minutes * 60
                started = bumped = False
                i = 0
                while time.monotonic() < end:
                    frac = (time.monotonic() - t0) / (minutes * 60)
                    if not started and frac > 0.3:
                        admin.CreateExperiment(
                            admin_pb2.CreateExperimentRequest(
                                name="support-ts-vs-eps",
                                route="support",
                                variants=[
                                    admin_pb2.Variant(
                                        name="control", policy="support-ts", weight=50, control=True
                                    ),
                                    admin_pb2.Variant(
                                        name="treatment", policy="support-eps", weight=50
                                    ),
                                ],
                                guardrail=admin_pb2.Guardrail(max_reward_drop=0.2),
                                start=True,
                                actor="operator",
                            ),
                            metadata=admin_md,
                        )
                        started = True
                    if not bumped and frac > 0.6:
                        admin.PutPolicy(
                            admin_pb2.PutPolicyRequest(
                                name="default",
                                algorithm="linucb",
                                reward=admin_pb2.RewardWeights(
                                    cost_weight=40.0, feedback_weight=0.5
                                ),
                            ),
                            metadata=admin_md,
                        )
                        bumped = True
                    route = "support" if i % 3 == 0 else "default"
                    resp = router.Route(
                        router_pb2.RouteRequest(
                            prompt=f"question {i}: " + "lorem ipsum " * rng.randint(5, 60),
                            route=route,
                            unit_id=f"user-{rng.randint(1, 500)}",
                        )
                    )
                    quality = min(1.0, max(0.0, _QUALITY[resp.model] + rng.gauss(0, 0.12)))
                    tokens_in, tokens_out = rng.randint(200, 1500), rng.randint(50, 600)
                    router.RecordOutcome(
                        router_pb2.RecordOutcomeRequest(
                            decision_id=resp.decision_id,
                            quality=quality,
                            input_tokens=tokens_in,
                            output_tokens=tokens_out,
                            latency_ms=rng.uniform(300, 2500),
                        )
                    )
                    if i % 5 == 0:
                        router.SubmitFeedback(
                            router_pb2.SubmitFeedbackRequest(
                                decision_id=resp.decision_id,
                                rating=1.0 if quality > 0.7 else 0.0,
                                source="user",
                            )
                        )
                    i += 1
                    time.sleep(max(0.0, 1.0 / rate - 0.005))
            server.sync()
            print(f"real run: {i} requests in {minutes} min", file=sys.stderr)
            base = f"http://127.0.0.1:{port}"
            shots = {
                "dashboard-overview.png": "/?window=hour",
                "dashboard-route.png": "/routes/default?window=hour",
                "dashboard-route-support.png": "/routes/support?window=hour",
                "dashboard-experiment.png": "/experiments/support-ts-vs-eps?window=hour",
            }
            out_dir.mkdir(parents=True, exist_ok=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=shutil.which("chromium") or None, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/?token={TEST_ADMIN_TOKEN}")
                for name, path in shots.items():
                    page.goto(base + path)
                    page.screenshot(path=str(out_dir / name), full_page=True)
                    print(f"wrote {out_dir / name}", file=sys.stderr)
                browser.close()
        finally:
            if server is not None:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL server to create a temp db on")
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--existing-database-url",
        help="measure an already seeded database (from an earlier run) instead of seeding one",
    )
    parser.add_argument(
        "--screenshots",
        metavar="DIR",
        help="instead: run a real server with simulated traffic and screenshot every page",
    )
    parser.add_argument("--minutes", type=float, default=14.0, help="length of that run")
    parser.add_argument("--rate", type=float, default=8.0, help="its requests per second")
    args = parser.parse_args()
    if args.screenshots:
        _real_run(Path(args.screenshots), args.minutes, args.rate)
        return
    if args.existing_database_url:
        print(json.dumps(_measure(args.existing_database_url, args.repeat)))
        return
    with migrated_database(args.database_url or None, "br_bench_dash", "banditroute-dash-") as (
        url,
        mode,
    ):
        t0 = time.perf_counter()
        _seed(url, args.decisions)
        seed_s = time.perf_counter() - t0
        result = _measure(url, args.repeat)
        engine = create_engine(url)
        with engine.connect() as conn:
            counts = conn.execute(
                text("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM outcomes)")
            ).one()
        engine.dispose()
        output = {
            **result,
            "decisions": int(counts[0]),
            "outcomes": int(counts[1]),
            "seed_s": round(seed_s, 1),
        }
        write_benchmark_result("dashboard", output, url, mode)


if __name__ == "__main__":
    main()
