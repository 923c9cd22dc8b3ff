"""`banditroute replay` / `evaluate` command functions, driven through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from banditroute.service.replay.cli import evaluate_command, replay_command


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("replay")(replay_command)
    app.command("evaluate")(evaluate_command)
    return app


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    """A generic JSONL dataset: 'small' answers short prompts, only 'large' long ones."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(160):
        long = bool(rng.integers(0, 2))
        prompt = ("Explain in detail, step by step, the proof of theorem " * 6 if long
                  else "hi there ") + str(i)
        lines.append(json.dumps({
            "prompt": prompt,
            "quality": {"small": 0.0 if long else 1.0, "large": 1.0},
            "cost": {"small": 0.0001, "large": 0.002},
            "split": "train" if i < 80 else "test",
        }))
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_json_report_has_the_documented_keys(app: typer.Typer, traffic: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "replay", "--dataset", str(traffic), "--split", "test", "--policy", "linucb",
        "--policy", "epsilon_greedy:epsilon=0.05", "--seeds", "2", "--cost-weight", "100",
        "--cost-weight", "0", "--cost-weight", "1000", "--warm-start", "--json", "--out",
        str(out), "--feature-dim", "32"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("policy", "split", "seeds", "accuracy", "cost_per_query", "best_single_model",
                "best_single_accuracy", "best_single_cost_per_query", "oracle_accuracy",
                "oracle_cost_per_query", "aiq"):
        assert key in report, key
    assert report["split"] == "test" and report["seeds"] == [0, 1]
    assert report["best_single_model"] == "large"
    assert {(r["policy"], r["start"]) for r in report["results"]} == {
        ("linucb", "cold"), ("linucb", "warm"), ("epsilon_greedy", "cold"),
        ("epsilon_greedy", "warm")}
    for entry in report["results"]:
        for key in ("hull_gap", "late_hull_gap", "late_hull_gap_std",
                    "final_regret_vs_best_fixed", "regret_vs_best_fixed_curve", "share_curve"):
            assert key in entry, key
        assert [set(s) >= {"seed", "late_hull_gap", "hull_gap"} for s in entry["per_seed"]] \
            == [True, True]
        assert entry["late_hull_gap"] == pytest.approx(
            np.mean([s["late_hull_gap"] for s in entry["per_seed"]]))
    names = {p.name for p in out.iterdir()}
    assert {"traffic_test.json", "traffic_test.md", "traffic_test_cost_quality.png",
            "traffic_test_regret.png", "traffic_test_regret_vs_best_fixed.png",
            "traffic_test_shares.png"} <= names
    table = (out / "traffic_test.md").read_text()
    assert "| linucb | warm |" in table and "late hull gap |" in table.splitlines()[2]


def test_replay_is_deterministic_across_invocations(app: typer.Typer, traffic: Path) -> None:
    args = ["replay", "--dataset", str(traffic), "--split", "all", "--policy", "thompson",
            "--seeds", "1", "--cost-weight", "100", "--json", "--feature-dim", "32"]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_evaluate_reads_a_decision_log_written_by_replay(app: typer.Typer, traffic: Path,
                                                         tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(app, [
        "replay", "--dataset", str(traffic), "--split", "all", "--policy",
        "epsilon_greedy:epsilon=0.3", "--seeds", "1", "--cost-weight", "100",
        "--decision-log", str(log), "--json", "--feature-dim", "32"])
    assert result.exit_code == 0, result.output
    assert len(log.read_text().splitlines()) == 160
    result = CliRunner().invoke(app, ["evaluate", "--log", str(log), "--policy", "linucb",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["events"] == 160
    for name in ("ips", "snips", "dr", "replay"):
        est = out["estimates"][name]
        assert est["ci_low"] <= est["value"] <= est["ci_high"]
        assert 0 < est["supported"] <= 160


def test_replay_unknown_dataset_exits_with_a_clear_error(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["replay", "--dataset", "nope", "--json"])
    assert result.exit_code == 1
    assert "dataset" in result.output


def test_replay_unknown_algorithm_exits_with_a_clear_error(app: typer.Typer,
                                                           traffic: Path) -> None:
    result = CliRunner().invoke(app, ["replay", "--dataset", str(traffic), "--policy",
                                      "nosuch", "--seeds", "1", "--cost-weight", "1"])
    assert result.exit_code == 1
    assert "unknown algorithm" in result.output


def test_evaluate_bad_log_line_exits_with_its_line_number(app: typer.Typer,
                                                          tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text('{"features": [1.0], "model": "a", "propensity": 0.5, "reward": 1}\n'
                   '{"features": [1.0], "model": "a"}\n')
    result = CliRunner().invoke(app, ["evaluate", "--log", str(log)])
    assert result.exit_code == 1
    assert ":2:" in result.output


def test_replay_drives_a_real_server_over_grpc(request: pytest.FixtureRequest,
                                              traffic: Path) -> None:
    try:
        server = request.getfixturevalue("grpc_server")
    except pytest.FixtureLookupError:
        pytest.skip("grpc_server fixture not available")
    from banditroute.service.replay.grpc_driver import replay_over_grpc
    from banditroute.service.replay.loaders import load_generic
    from banditroute.service.replay.runner import PolicySpec

    data = load_generic(traffic, "test")
    seen: list[int] = []
    res = replay_over_grpc(server.address, data, PolicySpec("linucb"), cost_weight=100.0,
                           seed=0, admin_token=server.admin_token,
                           progress=lambda done, total: seen.append(done))
    assert seen[-1] == data.n
    assert len(res.decisions) == data.n
    assert all(0 < d["propensity"] <= 1 for d in res.decisions)
    assert set(res.shares) == {"small", "large"}


def test_evaluate_reads_decisions_logged_in_postgresql(request: pytest.FixtureRequest,
                                                       traffic: Path, app: typer.Typer) -> None:
    try:
        server = request.getfixturevalue("grpc_server")
    except pytest.FixtureLookupError:
        pytest.skip("grpc_server fixture not available")
    import time

    from banditroute.service.replay.grpc_driver import replay_over_grpc
    from banditroute.service.replay.loaders import load_generic
    from banditroute.service.replay.offline import load_events_from_db
    from banditroute.service.replay.runner import PolicySpec

    data = load_generic(traffic, "all")
    res = replay_over_grpc(server.address, data, PolicySpec.parse("epsilon_greedy:epsilon=0.2"),
                           cost_weight=100.0, seed=1, route="ope",
                           admin_token=server.admin_token)
    events = load_events_from_db(server.db_url, route="ope")
    for _ in range(50):  # decisions are written by a group-commit writer
        if len(events) == data.n:
            break
        time.sleep(0.1)
        events = load_events_from_db(server.db_url, route="ope")
    assert len(events) == data.n
    logged = sorted((e.arm, round(e.propensity, 9)) for e in events)
    assert logged == sorted((d["model"], round(d["propensity"], 9)) for d in res.decisions)
    result = CliRunner().invoke(app, ["evaluate", "--database-url", server.db_url, "--route",
                                      "ope", "--policy", "linucb", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["events"] == data.n
    assert out["estimates"]["snips"]["supported"] > 0


def test_replay_command_with_server_reports_grpc_results(request: pytest.FixtureRequest,
                                                         traffic: Path,
                                                         app: typer.Typer) -> None:
    try:
        server = request.getfixturevalue("grpc_server")
    except pytest.FixtureLookupError:
        pytest.skip("grpc_server fixture not available")
    result = CliRunner().invoke(app, [
        "replay", "--dataset", str(traffic), "--split", "test", "--policy", "thompson",
        "--seeds", "1", "--cost-weight", "100", "--server", server.address,
        "--admin-token", server.admin_token, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "grpc" and report["policy"] == "thompson"
    assert report["best_single_model"] == "large"
    assert 0.0 <= report["accuracy"] <= 1.0
    assert report["results"][0]["per_seed"][0]["seed"] == 0
    assert report["results"][0]["late_hull_gap"] == pytest.approx(
        report["results"][0]["per_seed"][0]["late_hull_gap"])
    for key in ("hull_gap", "late_hull_gap"):  # the interval around the same gap
        lo, hi = report["results"][0][f"{key}_ci95"]
        assert lo <= report["results"][0][key] <= hi


def test_replay_budget_per_request_paces_mean_cost_to_the_budget(app: typer.Typer,
                                                                 traffic: Path) -> None:
    budget = 0.0008  # between always-small (0.0001) and always-large (0.002)
    result = CliRunner().invoke(app, [
        "replay", "--dataset", str(traffic), "--split", "test", "--policy", "linucb",
        "--seeds", "2", "--warm-start", "--budget-per-request", str(budget),
        "--pacing-step", "0.05", "--json", "--feature-dim", "32"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (entry,) = report["results"]
    assert report["budget_per_request"] == budget
    assert 0.85 <= entry["cost_over_budget"] <= 1.1
    assert len(entry["windows_cost_over_budget"]) == 5
    assert all(s["final_lambda"] > 0 for s in entry["per_seed"])


@pytest.mark.parametrize("budget", [[], ["--budget-per-request", "0.001"]],
                         ids=["fixed-weight", "budget"])
def test_replay_warm_start_without_train_rows_exits_with_a_clear_error(
        app: typer.Typer, traffic: Path, tmp_path: Path, budget: list[str]) -> None:
    only_test = tmp_path / "only_test.jsonl"
    only_test.write_text("".join(line + "\n" for line in traffic.read_text().splitlines()
                                 if '"split": "test"' in line))
    result = CliRunner().invoke(app, ["replay", "--dataset", str(only_test), "--seeds", "1",
                                      "--warm-start", "--json", *budget])
    assert result.exit_code == 1
    assert "--warm-start: the train split of" in result.output
    assert "is empty" in result.output


@pytest.mark.parametrize("value", ["-1", "nan", "inf"], ids=["negative", "nan", "inf"])
def test_replay_budget_per_request_rejects_bad_values(app: typer.Typer, traffic: Path,
                                                      value: str) -> None:
    result = CliRunner().invoke(app, ["replay", "--dataset", str(traffic),
                                      "--budget-per-request", value])
    assert result.exit_code == 1
    assert "budget_per_request_usd" in result.output


def test_another_operating_fraction_reorders_the_same_lambda_grid() -> None:
    from banditroute.service.replay.cli import DEFAULT_COST_FRACTIONS, default_cost_weights
    from banditroute.service.replay.dataset import ReplayDataset

    ds = ReplayDataset("t", ["a"], ["m"], np.array([[1.0]]), np.array([[0.01]]))
    shipped, earlier = default_cost_weights(ds), default_cost_weights(ds, 0.2)
    assert shipped[0] == DEFAULT_COST_FRACTIONS[0] * 100 and earlier[0] == 20.0
    assert sorted(shipped) == sorted(earlier)
    with pytest.raises(ValueError, match="not in the grid"):
        default_cost_weights(ds, 0.123)


def test_replay_operating_fraction_picks_the_operating_lambda(app: typer.Typer,
                                                              traffic: Path) -> None:
    def run(*extra: str) -> Any:
        return CliRunner().invoke(app, [
            "replay", "--dataset", str(traffic), "--policy", "linucb", "--seeds", "1",
            "--json", "--feature-dim", "32", *extra])

    shipped, earlier = run(), run("--operating-fraction", "0.2")
    assert shipped.exit_code == 0 and earlier.exit_code == 0, earlier.output
    shipped_report, earlier_report = json.loads(shipped.stdout), json.loads(earlier.stdout)
    assert earlier_report["cost_weight"] == pytest.approx(2 * shipped_report["cost_weight"])
    assert sorted(earlier_report["cost_weights"]) == sorted(shipped_report["cost_weights"])
    for bad in (["--operating-fraction", "0.123"],
                ["--operating-fraction", "0.2", "--cost-weight", "5"],
                ["--operating-fraction", "0.2", "--budget-per-request", "0.001"]):
        result = run(*bad)
        assert result.exit_code == 1
        assert "operating" in result.output
