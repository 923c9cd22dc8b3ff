"""The experiment status from live sums equals the previous row-by-row computation.

:func:`banditroute.service.experiments.stats.experiment_status` reads per-experiment sums kept
by :mod:`banditroute.service.experiments.live` (one grouped SQL statement, then the outcomes
and ratings logged since). The previous implementation read every scored decision into Python
and ran :func:`~banditroute.service.experiments.stats.off_policy_estimates` on them, with the
per-variant aggregates and percentiles computed by PostgreSQL over the joined rows. It is kept
here as the reference (``_reference_status``, minus its 200,000-row cap), and random logs,
written in several steps with late outcomes and ratings on decisions scored before (which
retract and re-add their reward), must give the same status after every step, and the same
reward series as the dashboard's raw-row query.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, and_, func, select, text, true

from banditroute.learners.evaluation import Estimate
from banditroute.learners.pacing import period_bounds
from banditroute.learners.reward import RewardWeights
from banditroute.learners.sequential import Interval, MeanSummary
from banditroute.service.dashboard import queries as q
from banditroute.service.experiments.guardrails import GuardrailConfig
from banditroute.service.experiments.live import (
    CELL,
    Group,
    OffPolicySums,
    row_group,
)
from banditroute.service.experiments.shadow import shadow_key
from banditroute.service.experiments.stats import (
    LoggedRow,
    _Aggregate,
    _scored,
    compute_status,
    experiment_status,
    experiment_status_and_rewards,
    logged_rows,
    off_policy_estimates,
    yardstick,
)
from banditroute.service.experiments.views import (
    ExperimentStatusView,
    ExperimentView,
    RouteBudgetView,
    VariantView,
)
from banditroute.service.storage.database import create_engine

ARMS = ("a", "b", "c")


# -- the previous implementation (every scored row into Python), as the reference -----------
_SHADOW_COUNTS = text(
    """
    SELECT k.key AS key, count(*) AS decisions, count(o.event_id) AS outcomes
    FROM decisions d
    CROSS JOIN LATERAL jsonb_object_keys(coalesce(d.shadow, '{}'::jsonb)) AS k(key)
    LEFT JOIN outcomes o
      ON o.decision_id = d.decision_id AND o.decision_created_at = d.created_at
    WHERE d.experiment = :name
    GROUP BY k.key
    """
)


def _f(x: Any) -> float:
    return math.nan if x is None else float(x)


def _reference_aggregates(
    engine: Engine,
    experiment: str,
    weights: RewardWeights,
    period: tuple[datetime, datetime] | None = None,
) -> dict[str, _Aggregate]:
    sc = _scored(experiment, weights).c
    in_period = (
        true() if period is None else and_(sc.created_at >= period[0], sc.created_at < period[1])
    )

    def sums(x: Any, name: str) -> list[Any]:
        return [
            func.count(x).label(f"{name}_n"),
            func.sum(x).label(f"{name}_sum"),
            func.sum(x * x).label(f"{name}_sq"),
        ]

    query = select(
        sc.variant,
        func.count().label("decisions"),
        func.count(sc.outcome_id).label("outcomes"),
        *sums(sc.reward, "r"),
        *sums(sc.base, "q"),
        *sums(sc.cost_usd, "c"),
        func.percentile_cont(0.5).within_group(sc.latency_ms).label("p50"),
        func.percentile_cont(0.95).within_group(sc.latency_ms).label("p95"),
        func.coalesce(func.sum(sc.cost_usd), 0.0).label("spend"),
        func.coalesce(func.sum(sc.cost_usd).filter(in_period), 0.0).label("period_spend"),
    ).group_by(sc.variant)
    out: dict[str, _Aggregate] = {}
    with engine.connect() as conn:
        for r in conn.execute(query).mappings():
            out[r["variant"]] = _Aggregate(
                decisions=int(r["decisions"]),
                outcomes=int(r["outcomes"]),
                reward=MeanSummary.from_sums(int(r["r_n"]), _f(r["r_sum"]), _f(r["r_sq"])),
                quality=MeanSummary.from_sums(int(r["q_n"]), _f(r["q_sum"]), _f(r["q_sq"])),
                cost=MeanSummary.from_sums(int(r["c_n"]), _f(r["c_sum"]), _f(r["c_sq"])),
                p50=_f(r["p50"]),
                p95=_f(r["p95"]),
                spend=float(r["spend"]),
                period_spend=math.nan if period is None else float(r["period_spend"]),
            )
    return out


def _reference_status(
    engine: Engine, view: ExperimentView, budget: RouteBudgetView | None = None
) -> ExperimentStatusView:
    """The status row by row; the spend in ``budget``'s period (the status under test reports
    which period it read, so a period boundary between the two calls cannot fail the test; the
    period itself is checked against the route by :func:`_check`)."""
    weights = yardstick(engine, view)
    period = None
    if budget is not None and budget.period_start is not None and budget.period_end is not None:
        period = (budget.period_start, budget.period_end)
    aggregates = _reference_aggregates(engine, view.name, weights, period)
    with engine.connect() as conn:
        shadow_counts = {
            r.key: (int(r.decisions), int(r.outcomes))
            for r in conn.execute(_SHADOW_COUNTS, {"name": view.name})
        }
    rows = logged_rows(engine, view.name, weights)
    alpha = view.guardrail.alpha
    estimates = {v.name: off_policy_estimates(rows, v, 1.0 - alpha) for v in view.variants}
    return compute_status(view, aggregates, shadow_counts, estimates, budget)


# -- comparison -------------------------------------------------------------------------------
#: Interval bounds and standard errors are square roots of variances computed from expanded
#: sums (``sum x^2 - n mean^2``): where the variance is 0 a rounding error of 1e-17 becomes a
#: standard error of 1e-9, so they are compared to 1e-6 (the status prints 3 decimals).
_SQRT_FIELDS = ("stderr", "low", "high", "ci_low", "ci_high")


def _close(a: float, b: float, what: str) -> None:
    if math.isnan(a) or math.isnan(b):
        assert math.isnan(a) and math.isnan(b), what
    elif math.isinf(a) or math.isinf(b):
        assert a == b, what
    else:
        tol = 1e-6 if what.endswith(_SQRT_FIELDS) else 1e-9
        assert a == pytest.approx(b, rel=1e-7, abs=tol), what


def _same(a: Any, b: Any, what: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, what
        return
    if isinstance(a, (Interval, Estimate)) or hasattr(a, "p_value"):
        for name in a.__dataclass_fields__:
            _same(getattr(a, name), getattr(b, name), f"{what}.{name}")
    elif isinstance(a, float) or isinstance(b, float):
        _close(float(a), float(b), what)
    else:
        assert a == b, what


def assert_same_status(got: ExperimentStatusView, want: ExperimentStatusView) -> None:
    assert got.method == want.method
    assert [v.variant for v in got.variants] == [v.variant for v in want.variants]
    for g, w in zip(got.variants, want.variants, strict=True):
        for name in (
            "decisions",
            "outcomes",
            "reward",
            "quality",
            "cost_usd",
            "latency_p50_ms",
            "latency_p95_ms",
            "reward_diff_vs_control",
            "ips",
            "snips",
            "dr",
            "spend_usd",
            "spend_per_request_usd",
            "period_spend_usd",
            "budget_share",
        ):
            _same(getattr(g, name), getattr(w, name), f"{g.variant.name}.{name}")
    assert got.budget == want.budget


def _check(engine: Engine, view: ExperimentView) -> ExperimentStatusView:
    """The live status equals the row-by-row one, and reports the route's budget with the
    period the pacer's calendar puts the call in."""
    before = datetime.now(UTC)
    got = experiment_status(engine, view)
    after = datetime.now(UTC)
    assert_same_status(got, _reference_status(engine, view, got.budget))
    _check_budget(engine, view, got.budget, before, after)
    return got


def _check_budget(
    engine: Engine,
    view: ExperimentView,
    got: RouteBudgetView | None,
    before: datetime,
    after: datetime,
) -> None:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT budget_per_request_usd, budget_usd, budget_period FROM routes "
                "WHERE tenant = :t AND name = :n"
            ),
            {"t": view.tenant, "n": view.route},
        ).first()
    if row is None or (row[0] is None and row[1] is None):
        assert got is None
        return
    assert got is not None
    assert (got.budget_per_request_usd, got.budget_usd, got.period) == tuple(row)
    if row[1] is None:
        assert got.period_start is None and got.period_end is None
        return
    bounds = {period_bounds(t.timestamp(), row[2]) for t in (before, after)}
    assert got.period_start is not None and got.period_end is not None
    assert (got.period_start.timestamp(), got.period_end.timestamp()) in bounds


# -- random logs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


def _view(name: str, policy: str, route: str = "default") -> ExperimentView:
    variants = (
        VariantView("control", policy, 1, 50.0, False, True),
        VariantView("treatment", "treat", 1, 50.0, False, False),
        VariantView("shadow", "shade", 1, 0.0, True, False),
    )
    return ExperimentView(
        name=name,
        tenant="",
        route=route,
        state="running",
        salt=uuid.uuid4().hex,
        variants=variants,
        guardrail=GuardrailConfig(confidence=0.9),
        allocation=None,
        created_at=datetime.now(UTC),
    )


def _dist(rng: random.Random) -> dict[str, float]:
    arms = rng.sample(ARMS, rng.randint(1, len(ARMS)))
    raw = [rng.random() + (0.0 if rng.random() < 0.2 else 0.05) for _ in arms]
    total = sum(raw) or 1.0
    return {a: x / total for a, x in zip(arms, raw, strict=True)}


_DECISION = text(
    "INSERT INTO decisions (decision_id, created_at, event_id, tenant, route, unit_id, "
    "policy_name, policy_version, experiment, variant, bucket, model, propensity, candidates, "
    "scores, probabilities, estimated_cost_usd, features, prompt_hash, shadow) VALUES "
    "(:d, :t, nextval('event_ids'), '', 'default', '', 'p', 1, :x, :v, 0, :m, :p, "
    "CAST(:c AS text[]), CAST(:s AS float8[]), CAST(:pr AS float8[]), 0.0, ''::bytea, "
    "''::bytea, CAST(:sh AS jsonb))"
)
_OUTCOME = text(
    "INSERT INTO outcomes (event_id, decision_id, decision_created_at, tenant, quality, success, "
    "error, cost_usd, latency_ms, reward) VALUES (nextval('event_ids'), :d, :t, '', :q, :ok, "
    ":err, :c, :l, 0.0)"
)
_RATING = text(
    "INSERT INTO feedback (event_id, decision_id, decision_created_at, tenant, feedback_key, "
    "rating) VALUES (nextval('event_ids'), :d, :t, '', :k, :r)"
)


def _log_step(
    engine: Engine,
    name: str,
    keys: Sequence[str],
    rng: random.Random,
    known: list[tuple[uuid.UUID, datetime]],
) -> None:
    """New decisions (some with an outcome, some rated), then outcomes and ratings of earlier
    ones, each with ids from the event sequence as the writers take them."""
    import json

    now = datetime.now(UTC)
    with engine.begin() as c:
        for _ in range(rng.randint(0, 8)):
            did, t = uuid.uuid4(), now - timedelta(minutes=rng.uniform(0, 3 * 24 * 60))
            served = _dist(rng)
            model = rng.choice(list(served)) if rng.random() < 0.9 else rng.choice(ARMS)
            shadow: dict[str, Any] = {}
            for key in keys:
                if rng.random() < 0.6:
                    d = _dist(rng)
                    shadow[key] = {
                        "model": rng.choice(list(d)),
                        "propensity": 0.5,
                        "probabilities": d,
                    }
            c.execute(
                _DECISION,
                {
                    "d": did,
                    "t": t,
                    "x": name,
                    "v": rng.choice(("control", "treatment")),
                    "m": model,
                    "p": rng.choice((1.0, rng.uniform(0.05, 1.0))),
                    "c": list(served),
                    "s": [0.0] * len(served),
                    "pr": list(served.values()),
                    "sh": json.dumps(shadow) if shadow else None,
                },
            )
            known.append((did, t))
        with_outcome = {r[0] for r in c.execute(text("SELECT decision_id FROM outcomes"))}
        for did, t in rng.sample(known, min(len(known), rng.randint(0, 6))):
            if did in with_outcome:
                continue
            with_outcome.add(did)
            err = rng.random() < 0.15
            c.execute(
                _OUTCOME,
                {
                    "d": did,
                    "t": t,
                    "q": None if rng.random() < 0.3 else rng.random(),
                    "ok": rng.choice((None, True, False)),
                    "err": "boom" if err else "",
                    "c": None if rng.random() < 0.2 else rng.uniform(0, 0.01),
                    "l": None if rng.random() < 0.2 else rng.uniform(10, 3000),
                },
            )
        for did, t in rng.sample(known, min(len(known), rng.randint(0, 4))):
            c.execute(_RATING, {"d": did, "t": t, "k": uuid.uuid4().hex, "r": rng.random()})


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(1, 5),
    weights=st.tuples(
        st.sampled_from([0.0, 3.0]), st.sampled_from([0.0, 0.2]), st.sampled_from([0.0, 0.5, 1.0])
    ),
    # The route's budget (per request, per period, both, none): the spend per variant, and with
    # a period budget the spend of the decisions made in the current period and its share.
    budget=st.sampled_from(
        [None, (0.004, None, None), (None, 0.05, "hour"), (0.002, 0.5, "day"), (None, 2.0, "month")]
    ),
)
def test_live_status_equals_the_row_by_row_status(
    engine: Engine,
    seed: int,
    steps: int,
    weights: tuple[float, float, float],
    budget: tuple[float | None, float | None, str | None] | None,
) -> None:
    rng = random.Random(seed)
    name, policy = f"live-{uuid.uuid4().hex[:12]}", f"pol-{uuid.uuid4().hex[:12]}"
    route = "default"
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO policies (name, version, algorithm, cost_weight, latency_weight, "
                "feedback_weight) VALUES (:n, 1, 'linucb', :c, :l, :f)"
            ),
            {"n": policy, "c": weights[0], "l": weights[1], "f": weights[2]},
        )
        if budget is not None:
            route = f"r-{name}"
            c.execute(
                text(
                    "INSERT INTO routes (tenant, name, policy_name, budget_per_request_usd, "
                    "budget_usd, budget_period) VALUES ('', :n, :p, :b, :a, :per)"
                ),
                {"n": route, "p": policy, "b": budget[0], "a": budget[1], "per": budget[2]},
            )
    view = _view(name, policy, route)
    known: list[tuple[uuid.UUID, datetime]] = []
    for _ in range(steps):
        _log_step(engine, name, (f"{policy}@1", "treat@1", "shade@1"), rng, known)
        _check(engine, view)
        # The dashboard's series from the same sums equals its raw-row query.
        now = datetime.now(UTC)
        for stride in (CELL, timedelta(hours=1), timedelta(hours=6), timedelta(days=1)):
            since = _floor(now - 24 * stride, stride)
            with engine.connect() as conn:
                raw = q.experiment_rewards_by_bucket(
                    conn, name, yardstick(engine, view), since, stride
                )
            status, moments = experiment_status_and_rewards(engine, view, since, stride)
            assert_same_status(status, _reference_status(engine, view, status.budget))
            got = [q.VariantBucket(b, v, m.n, m.total, m.total_sq) for b, v, m in moments]
            _same_buckets(got, raw)
    # Retention drops old decisions: the sums notice a variant's count going down and rebuild.
    gone = [did for did, _ in rng.sample(known, min(len(known), 3))]
    with engine.begin() as c:
        c.execute(text("DELETE FROM feedback WHERE decision_id = ANY(:ids)"), {"ids": gone})
        c.execute(text("DELETE FROM outcomes WHERE decision_id = ANY(:ids)"), {"ids": gone})
        c.execute(text("DELETE FROM decisions WHERE decision_id = ANY(:ids)"), {"ids": gone})
    _check(engine, view)
    # A second process (no sums yet) builds the same status in one statement.
    from banditroute.service.experiments import live

    live.forget_all()
    _check(engine, view)


def test_live_shadow_counts_settle(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no settling delay, the decisions each shadow policy scored are folded into the
    stable count at every refresh (the path a long-running server takes) and stay exact."""
    from banditroute.service.experiments import live

    monkeypatch.setattr(live, "SETTLE_S", 0.0)
    view = _logged_and_checked(engine, "settle", seed=7, steps=5)
    sums = live.live_sums(engine, view, yardstick(engine, view))
    assert sums._stable > 0 and sums.shadow_decisions


def test_live_sums_rebuild_after_a_long_gap(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh over more event ids than REBUILD_AFTER_EVENTS rebuilds, with the same result."""
    from banditroute.service.experiments import live

    monkeypatch.setattr(live, "REBUILD_AFTER_EVENTS", 0)
    _logged_and_checked(engine, "gap", seed=11, steps=3)


def _logged_and_checked(engine: Engine, prefix: str, seed: int, steps: int) -> ExperimentView:
    """A new experiment logged in ``steps`` random steps, the live status checked after each."""
    rng = random.Random(seed)
    policy = f"pol-{uuid.uuid4().hex[:12]}"
    view = _view(f"{prefix}-{uuid.uuid4().hex[:12]}", policy)
    known: list[tuple[uuid.UUID, datetime]] = []
    for _ in range(steps):
        _log_step(engine, view.name, (f"{policy}@1", "treat@1", "shade@1"), rng, known)
        _check(engine, view)
    return view


def _floor(t: datetime, stride: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((t - epoch) // stride) * stride


def _same_buckets(got: Sequence[q.VariantBucket], want: Sequence[q.VariantBucket]) -> None:
    def key(b: q.VariantBucket) -> tuple[Any, ...]:
        return (b.bucket is not None, b.bucket, b.variant)

    got, want = sorted(got, key=key), sorted(want, key=key)
    assert [(b.bucket, b.variant, b.n) for b in got] == [(b.bucket, b.variant, b.n) for b in want]
    for g, w in zip(got, want, strict=True):
        _close(g.total, w.total, "total")
        _close(g.total_sq, w.total_sq, "total_sq")


# -- the off-policy sums alone (no database) --------------------------------------------------
_row = st.builds(
    lambda own, model, p, r, d, key: (own, model, p, r, d, key),
    st.booleans(),
    st.sampled_from(ARMS),
    st.floats(0.05, 1.0),
    st.floats(-1.0, 1.0),
    # 0 or at least 1e-9, as in test_experiments_reward_sql: no probability is subnormal.
    st.dictionaries(st.sampled_from(ARMS), st.just(0.0) | st.floats(1e-9, 1.0), min_size=1),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(_row, max_size=30), retract=st.integers(0, 10))
def test_off_policy_sums_equal_the_estimators(rows: list[Any], retract: int) -> None:
    """Added one by one or as groups, with some rows added and retracted again, the sums give
    the IPS, SNIPS and DR estimates of ``off_policy_estimates`` on the remaining rows."""
    target = VariantView("t", "pt", 1, 50.0, False, False)
    key = shadow_key("pt", 1)
    logged = []
    for own, model, p, r, dist, in_shadow in rows:
        if own:
            logged.append(LoggedRow("t", model, p, r, None, dist))
        else:
            shadow = {key: {"probabilities": dist}} if in_shadow else {"x@1": {}}
            logged.append(LoggedRow("o", model, p, r, shadow, {}))
    sums = OffPolicySums()
    groups: list[Group] = []
    for row in logged:
        g = _group(row, key)
        if g is not None:
            groups.append(g)
    sums.add(groups)
    gone = [row for row in logged[:retract]]
    sums.add([g for row in gone if (g := _group(row, key, sign=-1)) is not None])
    sums.add([g for row in gone if (g := _group(row, key)) is not None])
    want = off_policy_estimates(logged, target, 0.9)
    got = sums.estimates(0.9)
    if want is None:
        assert got is None
        return
    assert got is not None
    for g_, w_ in zip(got, want, strict=True):
        _same(g_, w_, g_.method)


def _group(row: LoggedRow, key: str, sign: int = 1) -> Group | None:
    if row.variant == "t":
        return row_group(True, row.model, row.distribution, row.propensity, row.reward, sign)
    if row.shadow and key in row.shadow:
        dist = row.shadow[key].get("probabilities") or {}
        return row_group(False, row.model, dist, row.propensity, row.reward, sign)
    return None
