"""Settings: sources and their precedence, validation messages, URL builders, docs in sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from banditroute.service.config import (
    Settings,
    default_data_dir,
    libpq_url,
    load_settings,
    render_markdown,
    sqlalchemy_url,
)
from banditroute.service.errors import InvalidArgument

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BANDITROUTE_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert (s.port, s.metrics_port, s.workers, s.feature_dim) == (50051, 9464, 1, 64)
    assert s.database_url is None and s.embedded and not s.store_prompts
    assert s.max_prompt_bytes == 1 << 20


def test_precedence_options_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "b.toml"
    config.write_text("port = 1001\nworkers = 3\nmetrics_port = 1003\n")
    monkeypatch.setenv("BANDITROUTE_CONFIG", str(config))
    monkeypatch.setenv("BANDITROUTE_WORKERS", "4")
    s = load_settings(metrics_port=0, port=None)
    assert (s.port, s.workers, s.metrics_port) == (1001, 4, 0)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        pytest.param({"BANDITROUTE_PORT": "x"}, "port", id="port-not-int"),
        pytest.param({"BANDITROUTE_PORT": "70000"}, "port", id="port-range"),
        pytest.param({"BANDITROUTE_WORKERS": "0"}, "workers", id="no-workers"),
        pytest.param({"BANDITROUTE_LOG_LEVEL": "loud"}, "log_level", id="bad-level"),
        pytest.param({"BANDITROUTE_DATABASE_URL": "mysql://x/y"}, "PostgreSQL", id="not-pg"),
        pytest.param({"BANDITROUTE_TLS_CERT_FILE": "/c.pem"}, "tls_key_file", id="half-tls"),
    ],
)
def test_invalid_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgument, match=fragment):
        load_settings()


def test_unknown_key_in_file_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "b.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(InvalidArgument, match="prot"):
        load_settings(config)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_settings(tmp_path / "none.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n")
    with pytest.raises(InvalidArgument, match=r"broken\.toml"):
        load_settings(broken)


def test_admin_token_is_secret() -> None:
    s = Settings(admin_token="hunter2")
    assert "hunter2" not in repr(s)
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    ("url", "sqlalchemy", "libpq"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d", "postgresql://u@h/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d", "postgresql://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg://u@h/d", "postgresql://u@h/d"),
        (
            "postgresql+psycopg://p:@/d?host=/tmp/s",
            "postgresql+psycopg://p:@/d?host=/tmp/s",
            "postgresql://p:@/d?host=/tmp/s",
        ),
    ],
)
def test_url_builders(url: str, sqlalchemy: str, libpq: str) -> None:
    assert sqlalchemy_url(url) == sqlalchemy
    assert libpq_url(url) == libpq


def test_default_data_dir_is_never_under_root_home() -> None:
    path = default_data_dir().resolve()
    assert path != Path("/root") and Path("/root") not in path.parents


def test_configuration_doc_is_current() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert doc == render_markdown(), (
        "regenerate: python -m banditroute.service.config > docs/configuration.md"
    )
