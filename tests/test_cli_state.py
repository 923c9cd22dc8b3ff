"""CLI commands on state work on the embedded database (``--data-dir``) like on a URL:
``policies state``, ``evaluate`` and ``experiments``; ``--json`` keeps numbers as numbers."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

from banditroute.service import supervisor
from banditroute.service.cli import app
from banditroute.service.config import Settings
from banditroute.service.experiments.cli import DEFAULT_MAX_REWARD_DROP
from banditroute.service.storage.database import open_database
from banditroute.v1 import router_pb2, router_pb2_grpc
from tests.helpers import InProcessServer, free_port, mtls_server
from tests.tls_certs import make_pki

runner = CliRunner()
OUTCOMES = 30


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_data_dir() -> Iterator[Path]:
    """A data dir that ``serve --demo`` set up, with 30 routed prompts and their outcomes."""
    data_dir = Path(tempfile.mkdtemp(prefix="banditroute-cli-state-", dir="/tmp"))
    patch = pytest.MonkeyPatch()
    patch.setattr(supervisor, "run_workers", lambda settings, url: None)
    patch.setattr(supervisor, "configure_logging", lambda settings: None)
    try:
        served = invoke("serve", "--demo", "--data-dir", str(data_dir))
        assert served.exit_code == 0, served.output
    finally:
        patch.undo()
    try:
        with open_database(Settings(data_dir=data_dir)) as database:
            server = InProcessServer(database.url)
            try:
                with grpc.insecure_channel(server.address) as channel:
                    router = router_pb2_grpc.RouterStub(channel)
                    rng = random.Random(7)
                    for i in range(OUTCOMES):
                        reply = router.Route(router_pb2.RouteRequest(prompt=f"question {i}"))
                        router.RecordOutcome(
                            router_pb2.RecordOutcomeRequest(
                                decision_id=reply.decision_id, quality=rng.random()
                            )
                        )
                server.sync()
            finally:
                server.stop()
        yield data_dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_policies_state_json_on_data_dir_shows_learnt_updates(demo_data_dir: Path) -> None:
    result = invoke("policies", "state", "--json", "--data-dir", str(demo_data_dir))
    assert result.exit_code == 0, result.output
    (state,) = json.loads(result.stdout)
    assert (state["policy"], state["version"], state["loaded"]) == ("default", 1, True)
    assert state["updates"] == OUTCOMES
    assert sum(arm["updates"] for arm in state["arms"]) == OUTCOMES
    assert all(isinstance(arm["updates"], int) for arm in state["arms"])
    assert isinstance(state["last_event_id"], int) and state["last_event_id"] > 0
    assert state["groups"] == 0  # the demo traffic sends no categorical context
    assert state["group_prior"] == 16.0  # nothing to estimate it from: the starting value
    learnt = [arm for arm in state["arms"] if arm["updates"]]
    assert learnt and all(0.0 <= arm["mean_reward"] <= 1.0 for arm in learnt)


def test_policies_state_table_names_the_policy(demo_data_dir: Path) -> None:
    result = invoke("policies", "state", "default", "--data-dir", str(demo_data_dir))
    assert result.exit_code == 0, result.output
    assert f"policy default version 1 (linucb): {OUTCOMES} updates" in result.stdout
    assert "mean_reward" in result.stdout


def test_policies_state_unknown_policy_is_one_line_error(demo_data_dir: Path) -> None:
    result = invoke("policies", "state", "nope", "--data-dir", str(demo_data_dir))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "nope" in result.stderr


def test_evaluate_json_on_data_dir(demo_data_dir: Path) -> None:
    result = invoke("evaluate", "--json", "--data-dir", str(demo_data_dir))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["events"] == OUTCOMES
    assert {"ips", "snips"} <= set(report["estimates"])


def test_evaluate_on_a_log_without_outcomes_reports_zero_events(fresh_db_url: str) -> None:
    result = invoke("evaluate", "--json", "--database-url", fresh_db_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["events"] == 0


def test_evaluate_refuses_an_unmigrated_database(empty_db_url: str) -> None:
    result = invoke("evaluate", "--database-url", empty_db_url)
    assert result.exit_code == 1
    assert "banditroute db upgrade" in result.stderr


def test_experiments_on_the_database_with_numbers_in_json(fresh_db_url: str) -> None:
    db = ("--database-url", fresh_db_url)
    for model in ("m1", "m2"):
        assert invoke("models", "add", model, *db).exit_code == 0
    assert invoke("policies", "put", "lin", *db).exit_code == 0
    assert invoke("policies", "put", "ts", "--algorithm", "thompson", *db).exit_code == 0
    assert invoke("routes", "put", "r", "--policy", "lin", *db).exit_code == 0
    variants = ("--variant", "base=lin:50:control", "--variant", "new=ts:50")
    created = invoke("experiments", "create", "e1", "--route", "r", *variants, "--start", *db)
    assert created.exit_code == 0, created.output
    assert "e1  running  route=r" in created.stdout
    status = invoke("experiments", "status", "e1", "--json", *db)
    assert status.exit_code == 0, status.output
    variants_json = json.loads(status.stdout)["variants"]
    assert {v["variant"] for v in variants_json} == {"base", "new"}
    assert all(type(v["decisions"]) is int and type(v["outcomes"]) is int for v in variants_json)
    guardrail = json.loads(status.stdout)["experiment"]["guardrail"]
    assert guardrail["max_reward_drop"] == DEFAULT_MAX_REWARD_DROP  # on by default (control)
    assert guardrail.get("max_cost_increase", 0) == 0
    bad = invoke("experiments", "ramp", "e1", "base=80", *db)
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")
    ramped = invoke("experiments", "ramp", "e1", "base=90", "new=10", *db)
    assert ramped.exit_code == 0 and "90%" in ramped.stdout
    assert "e1" in invoke("experiments", "list", *db).stdout
    rolled = invoke("experiments", "rollback", "e1", "--reason", "demo", *db)
    assert rolled.exit_code == 0 and "stopped" in rolled.stdout


def test_experiments_refused_connection_names_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = invoke("experiments", "list", "--address", address)
    assert result.exit_code == 1
    assert f"--address {address}" in result.stderr


def test_commands_start_quietly() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="banditroute-cli-quiet-", dir="/tmp"))
    command = [sys.executable, "-m", "banditroute.service.cli", "models", "list"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BANDITROUTE_", "XDG_"))}
    try:
        for _ in range(2):  # first start: initdb and migrations; second: an existing data dir
            done = subprocess.run(
                [*command, "--data-dir", str(data_dir)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout == "(none)\n"
            assert done.stderr == ""
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_experiments_over_grpc_with_mtls_and_admin_token(fresh_db_url: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    server = mtls_server(fresh_db_url, pki)
    try:
        remote = ("--address", server.address, "--admin-token", server.admin_token)
        tls = ("--tls-ca-file", str(pki.ca.cert))
        client = ("--tls-cert-file", str(pki.client.cert), "--tls-key-file", str(pki.client.key))
        listed = invoke("experiments", "list", *remote, *tls, *client)
        assert listed.exit_code == 0, listed.output
        assert listed.stdout == "(none)\n"
        no_token = invoke("experiments", "list", "--address", server.address, *tls, *client)
        assert no_token.exit_code == 1 and "UNAUTHENTICATED" in no_token.stderr
        plaintext = invoke("experiments", "list", *remote)
        assert plaintext.exit_code == 1 and f"--address {server.address}" in plaintext.stderr
    finally:
        server.stop()
