"""The Grafana dashboard under deploy/ queries only series a live server exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
import pytest

from banditroute.v1 import router_pb2
from tests.helpers import demo_router_with_metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "banditroute.json"
#: Series that only get a sample after a fault (a database error); their family must exist.
_FAULT_ONLY = {"banditroute_db_errors_total"}


def _queries(node: Any) -> list[str]:
    """Every PromQL string of the dashboard (panel targets and templating queries)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_queries(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_queries(item))
    return found


def _family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_dashboard_json_is_a_grafana_dashboard_with_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "banditroute" and dashboard["panels"]
    names = {n for q in _queries(dashboard) for n in re.findall(r"banditroute_\w+", q)}
    assert "banditroute_spend_usd_total" in names and "banditroute_route_replays_total" in names


@pytest.mark.slow
def test_every_metric_the_dashboard_queries_exists_after_traffic(fresh_db_url: str) -> None:
    with demo_router_with_metrics(fresh_db_url) as (router, scrape):
        request = router_pb2.RouteRequest(prompt="dashboard traffic", request_id="dash-1")
        reply = router.Route(request)
        router.Route(request)  # a replay
        router.RecordOutcome(
            router_pb2.RecordOutcomeRequest(
                decision_id=reply.decision_id, quality=0.8, cost_usd=0.01, latency_ms=120
            )
        )
        router.SubmitFeedback(
            router_pb2.SubmitFeedbackRequest(decision_id=reply.decision_id, rating=1.0)
        )
        with pytest.raises(grpc.RpcError):  # refused before the servicer: a rejection
            router.Route(router_pb2.RouteRequest(prompt="x" * (3 << 20)))
        text = scrape()
    dashboard = json.loads(DASHBOARD.read_text())
    names = {n for q in _queries(dashboard) for n in re.findall(r"banditroute_\w+", q)}
    samples = {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line}
    for name in sorted(names):
        exported = f"# TYPE {name} " in text or f"# TYPE {_family(name)} " in text
        assert exported, f"{name} is not exported"
        if name not in _FAULT_ONLY:
            assert name in samples, f"{name} has no sample after traffic"
