"""The ``banditroute`` CLI on real databases; ``serve`` with the worker start patched."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from banditroute.service import supervisor
from banditroute.service.cli import app
from banditroute.service.config import Settings, sqlalchemy_url
from banditroute.service.storage import migrate

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_admin_commands_round_trip(fresh_db_url: str) -> None:
    db = ("--database-url", fresh_db_url)
    added = invoke("models", "add", "m1", "--provider", "p", "--input-price", "1.5", *db)
    assert added.exit_code == 0, added.output
    assert invoke("models", "add", "m2", "--disabled", *db).exit_code == 0
    listed = invoke("models", "list", "--all", "--json", *db)
    assert [(m["id"], m["enabled"]) for m in json.loads(listed.stdout)] == [
        ("m1", True),
        ("m2", False),
    ]
    put = invoke("policies", "put", "p", "--algorithm", "linucb", "--param", "alpha=0.25", *db)
    assert put.exit_code == 0 and "version 1" in put.stdout
    policies = json.loads(invoke("policies", "list", "--json", *db).stdout)
    assert policies[0]["hyperparameters"] == {"alpha": 0.25}
    route = invoke("routes", "put", "r", "--policy", "p", "--model", "m1", "--tenant", "t", *db)
    assert route.exit_code == 0, route.output
    routes = json.loads(invoke("routes", "list", "--json", *db).stdout)
    assert [(r["tenant"], r["name"], r["models"]) for r in routes] == [("t", "r", ["m1"])]
    created = invoke("keys", "create", "--tenant", "t", *db)
    key_id = created.stdout.split("key_id:")[1].split()[0]
    assert "br_" in created.stdout
    assert invoke("keys", "revoke", key_id, *db).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("models", "add", "bad id"), "model id 'bad id'", id="bad-model-id"),
        pytest.param(
            ("models", "add", "m", "--input-price", "-1"), "input_usd_per_mtok", id="neg-price"
        ),
        pytest.param(
            ("policies", "put", "p", "--algorithm", "nope"), "unknown algorithm", id="bad-algo"
        ),
        pytest.param(
            ("policies", "put", "p", "--param", "alpha"), "name=value", id="bad-param-syntax"
        ),
        pytest.param(("routes", "put", "r", "--policy", "nope"), "not found", id="no-policy"),
        pytest.param(("keys", "revoke", "key_nope"), "not found", id="unknown-key"),
    ],
)
def test_domain_errors_print_one_line_and_exit_1(
    fresh_db_url: str, args: tuple[str, ...], message: str
) -> None:
    result = invoke(*args, "--database-url", fresh_db_url)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_admin_command_refuses_unmigrated_external_database(empty_db_url: str) -> None:
    result = invoke("models", "list", "--database-url", empty_db_url)
    assert result.exit_code == 1
    assert "run `banditroute db upgrade`" in result.stderr
    assert migrate.current(empty_db_url) is None


def test_db_upgrade_and_current(empty_db_url: str) -> None:
    before = invoke("db", "current", "--database-url", empty_db_url)
    assert "current: empty" in before.stdout
    upgraded = invoke("db", "upgrade", "--database-url", empty_db_url)
    assert upgraded.exit_code == 0
    assert migrate.current(empty_db_url) == migrate.head()
    after = invoke("db", "current", "--database-url", empty_db_url)
    assert f"current: {migrate.head()}" in after.stdout


def test_db_maintain_creates_partitions(fresh_db_url: str) -> None:
    result = invoke("db", "maintain", "--months-ahead", "14", "--database-url", fresh_db_url)
    assert result.exit_code == 0
    assert "decisions_y" in result.stdout  # months beyond the 2 made by the migration


class _Recorder:
    """Stands in for :func:`supervisor.run_workers`: records what serve would run."""

    def __init__(self) -> None:
        self.calls: list[Settings] = []
        self.urls: list[str] = []

    def __call__(self, settings: Settings, database_url: str) -> None:
        self.calls.append(settings)
        self.urls.append(database_url)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    """``serve`` up to the worker start (real database handling), without logging set-up."""
    recorder = _Recorder()
    monkeypatch.setattr(supervisor, "run_workers", recorder)
    monkeypatch.setattr(supervisor, "configure_logging", lambda settings: None)
    return recorder


def test_serve_passes_options_down(fresh_db_url: str, recorder: _Recorder) -> None:
    args = ["serve", "--port", "6001", "--metrics-port", "0", "--workers", "2", "--demo"]
    result = invoke(*args, "--database-url", fresh_db_url)
    assert result.exit_code == 0, result.output
    (settings,) = recorder.calls
    assert (settings.port, settings.metrics_port, settings.workers, settings.demo) == (
        6001,
        0,
        2,
        True,
    )
    assert settings.database_url == fresh_db_url
    assert recorder.urls == [sqlalchemy_url(fresh_db_url)]


def test_serve_refuses_unmigrated_external_database_unless_migrate(
    empty_db_url: str, recorder: _Recorder
) -> None:
    refused = invoke("serve", "--database-url", empty_db_url)
    assert refused.exit_code == 1
    assert "this banditroute needs" in refused.stderr and "db upgrade" in refused.stderr
    assert recorder.calls == []
    assert migrate.current(empty_db_url) is None
    migrated = invoke("serve", "--migrate", "--database-url", empty_db_url)
    assert migrated.exit_code == 0, migrated.output
    assert migrate.current(empty_db_url) == migrate.head()
    assert len(recorder.calls) == 1


def test_serve_reads_toml_config(fresh_db_url: str, tmp_path: Path, recorder: _Recorder) -> None:
    config = tmp_path / "banditroute.toml"
    config.write_text(f'database_url = "{fresh_db_url}"\nport = 7007\nworkers = 3\n')
    result = invoke("serve", "--config", str(config), "--workers", "1")
    assert result.exit_code == 0, result.output
    (settings,) = recorder.calls
    assert (settings.port, settings.workers) == (7007, 1)  # options win over the file


def test_invalid_config_is_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = 'not a port'\n")
    result = invoke("models", "list", "--config", str(config))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid configuration: port")


def test_embedded_database_is_started_migrated_and_stopped() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="banditroute-cli-", dir="/tmp"))
    try:
        added = invoke("models", "add", "m1", "--data-dir", str(data_dir))
        assert added.exit_code == 0, added.output
        listed = invoke("models", "list", "--json", "--data-dir", str(data_dir))
        assert [m["id"] for m in json.loads(listed.stdout)] == ["m1"]
        assert not (data_dir / "postgres" / "postmaster.pid").exists()  # stopped again
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
