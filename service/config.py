"""Typed settings of banditroute, from ``BANDITROUTE_*`` env vars and an optional TOML file.

Precedence, highest first: values passed in code (the CLI's options), environment variables
``BANDITROUTE_<NAME>`` (case-insensitive), the TOML file named by ``--config`` or
``BANDITROUTE_CONFIG`` (top-level keys named like the fields), then the defaults. Every field
is documented below and in ``docs/configuration.md`` (regenerate it with
``python -m banditroute.service.config > docs/configuration.md``).

Examples
--------
>>> s = Settings(port=6000, database_url="postgresql://u@db:5432/banditroute")
>>> s.port, s.sqlalchemy_url
(6000, 'postgresql+psycopg://u@db:5432/banditroute')
>>> libpq_url("postgresql+psycopg://u@db/banditroute")
'postgresql://u@db/banditroute'
"""

from __future__ import annotations

import contextvars
import os
import sys
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from banditroute.service.errors import InvalidArgument

__all__ = [
    "ENV_PREFIX",
    "Settings",
    "default_data_dir",
    "libpq_url",
    "load_settings",
    "render_markdown",
    "sqlalchemy_url",
]

ENV_PREFIX = "BANDITROUTE_"
_SYSTEM_DATA_DIR = Path("/var/lib/banditroute")
_TOML_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "banditroute_toml_file", default=None
)


def default_data_dir() -> Path:
    """Return the default directory of the embedded database.

    The user's data dir (``~/.local/share/banditroute`` on Linux), except when running as root
    with that dir under ``/root``: embedded PostgreSQL runs as its own system user and widens the
    permissions of every parent directory, so it must not live in ``/root``; then
    ``/var/lib/banditroute`` is used.
    """
    path = platformdirs.user_data_path("banditroute")
    if _is_root() and _is_under(path, Path("/root")):
        return _SYSTEM_DATA_DIR
    return path


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _is_under(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver that SQLAlchemy needs.

    >>> sqlalchemy_url("postgres://u:p@h:5432/d?sslmode=require")
    'postgresql+psycopg://u:p@h:5432/d?sslmode=require'
    >>> sqlalchemy_url("postgresql+psycopg://u@/d?host=/tmp/s")
    'postgresql+psycopg://u@/d?host=/tmp/s'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidArgument(f"database URL must look like postgresql://..., got {url!r}")
    base = scheme.split("+", 1)[0]
    if base not in ("postgresql", "postgres"):
        raise InvalidArgument(f"database URL must be a PostgreSQL URL, got scheme {scheme!r}")
    return f"postgresql+psycopg://{rest}"


def libpq_url(url: str) -> str:
    """Return ``url`` as a plain libpq URI (no SQLAlchemy driver) for raw psycopg.

    >>> libpq_url("postgresql+psycopg://u@/d?host=/tmp/s")
    'postgresql://u@/d?host=/tmp/s'
    """
    return "postgresql://" + sqlalchemy_url(url).partition("://")[2]


class Settings(BaseSettings):
    """All settings of banditroute; one field per setting, documented by its description."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    # --- database -------------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL (`postgresql://user:pass@host:5432/db`, any driver suffix "
        "is normalised). Unset = start the embedded PostgreSQL under `data_dir`.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory of the embedded PostgreSQL (used only when `database_url` is "
        "unset). Default: the user data dir, or `/var/lib/banditroute` for root. Must not be "
        "under /root: the embedded server runs as its own system user.",
    )
    # --- network --------------------------------------------------------------------------
    host: str = Field(
        "127.0.0.1",
        description="Address the gRPC server binds; use `0.0.0.0` or `[::]` to accept remote "
        "clients.",
    )
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = pick a free port).")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Prometheus metrics HTTP port (0 = disabled)."
    )
    workers: int = Field(
        1, ge=1, le=256, description="Server processes sharing the port (SO_REUSEPORT)."
    )
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="Seconds in-flight RPCs get to finish on SIGTERM/SIGINT."
    )
    # --- security -------------------------------------------------------------------------
    admin_token: SecretStr | None = Field(
        None,
        description="Token Admin RPCs must send as `authorization: Bearer <token>`. Unset = "
        "Admin RPCs are open (development only).",
    )
    require_api_keys: bool = Field(
        False,
        description="Require an `x-api-key` on Router RPCs; the key decides the tenant.",
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM server certificate chain; with `tls_key_file` enables TLS."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of `tls_cert_file`.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate (mTLS)."
    )
    # --- requests -------------------------------------------------------------------------
    store_prompts: bool = Field(
        False,
        description="Store raw prompt text with each decision. Off by default: only a SHA-256 "
        "hash and the features are stored.",
    )
    max_prompt_bytes: int = Field(
        1 << 20, ge=1, description="Largest accepted prompt in UTF-8 bytes (INVALID_ARGUMENT)."
    )
    max_batch_items: int = Field(
        1000, ge=1, description="Most items in one RecordOutcomes call (INVALID_ARGUMENT)."
    )
    max_in_flight: int = Field(
        512,
        ge=1,
        description="In-flight RPCs per process beyond which calls get RESOURCE_EXHAUSTED.",
    )
    # --- learning -------------------------------------------------------------------------
    feature_dim: int = Field(
        64, ge=2, le=4096, description="Dimension of the feature vector built from a prompt."
    )
    poll_interval_ms: float = Field(
        200.0,
        gt=0,
        description="How often a process polls the event log when no NOTIFY woke it and its "
        "LISTEN connection is down.",
    )
    listening_poll_interval_ms: float = Field(
        2000.0,
        gt=0,
        description="How often a process polls the event log while its LISTEN connection is up "
        "(outcomes, feedback and config changes then arrive by NOTIFY; the poll is a safety "
        "net). Never shorter than `poll_interval_ms`.",
    )
    snapshot_every_events: int = Field(
        10_000, ge=1, description="Events a policy applies between two state snapshots."
    )
    # --- write path -----------------------------------------------------------------------
    write_batch_max_rows: int = Field(1000, ge=1, description="Most rows one group commit writes.")
    write_flush_ms: float = Field(
        4.0,
        gt=0,
        description="Group-commit window (milliseconds): the longest a write waits for others "
        "to join its commit, and the least time between the end of one commit and the start of "
        "the next; a write a caller awaits (an outcome) is committed at once when the writer "
        "has been idle that long.",
    )
    write_max_pending_rows: int = Field(
        50_000,
        ge=1,
        description="Rows that may wait for a commit; beyond it writes get RESOURCE_EXHAUSTED.",
    )
    durable_decisions: bool = Field(
        False,
        description="Answer Route only after its decision committed (its commit, and under "
        "load up to one group-commit window, added to every Route). Off: Route answers once "
        "the policy chose and the decision is group-committed right after; a crash (kill -9) "
        "loses at most the decisions of the last window. Outcomes and feedback are always "
        "answered after commit.",
    )
    db_connect_timeout_s: float = Field(
        5.0, gt=0, description="Timeout of one database connection attempt."
    )
    outage_buffer_decisions: int = Field(
        10_000,
        ge=0,
        description="Decisions Route answers from memory while the database is unreachable, "
        "held and written when it returns (`logged = false`); beyond it decisions are answered "
        "but not stored (counted in `banditroute_decisions_dropped_total`).",
    )
    # --- operations -----------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level."
    )
    log_json: bool = Field(False, description="Write logs as one JSON object per line.")
    demo: bool = Field(
        False,
        description="On start, register a demo model pool with prices and a route `default` "
        "using LinUCB when they do not exist yet.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                sqlalchemy_url(value)
            except InvalidArgument as exc:
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def embedded(self) -> bool:
        """True when no ``database_url`` is set and the embedded PostgreSQL is used."""
        return self.database_url is None

    @property
    def sqlalchemy_url(self) -> str:
        """``database_url`` for SQLAlchemy (``postgresql+psycopg://``); needs a URL."""
        return sqlalchemy_url(self._require_url())

    @property
    def libpq_url(self) -> str:
        """``database_url`` as a plain libpq URI for raw psycopg; needs a URL."""
        return libpq_url(self._require_url())

    @property
    def tls_enabled(self) -> bool:
        """True when the gRPC port serves TLS."""
        return self.tls_cert_file is not None

    def _require_url(self) -> str:
        if self.database_url is None:
            raise InvalidArgument(
                "no database_url: the embedded database's URL is known once it runs; open it "
                "with banditroute.service.storage.database.open_database(settings)"
            )
        return self.database_url


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from ``overrides``, the environment and a TOML file.

    Parameters
    ----------
    config_file
        TOML file; defaults to ``$BANDITROUTE_CONFIG``; none when both are unset.
    overrides
        Values that win over every other source (``None`` values are ignored, so CLI options
        that were not given fall through).

    Raises
    ------
    InvalidArgument
        For a missing or malformed file and for every invalid value, naming the setting.

    Examples
    --------
    >>> load_settings(port=7000, workers=None).port
    7000
    """
    path_text = config_file if config_file is not None else os.environ.get(ENV_PREFIX + "CONFIG")
    path = Path(path_text) if path_text else None
    if path is not None and not path.is_file():
        raise InvalidArgument(f"config file {str(path)!r} does not exist")
    given = {k: v for k, v in overrides.items() if v is not None}
    token = _TOML_FILE.set(path)
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidArgument(f"invalid configuration: {problems}") from None
    except ValueError as exc:  # TOML syntax errors
        raise InvalidArgument(f"invalid config file {str(path)!r}: {exc}") from None
    finally:
        _TOML_FILE.reset(token)


def render_markdown() -> str:
    """Return ``docs/configuration.md``: a table of every setting with its env var and default."""
    lines = [
        "# Configuration",
        "",
        "banditroute reads one typed settings object (`service/config.py`). Precedence, highest",
        "first: command-line options, environment variables `BANDITROUTE_<NAME>`, a TOML file",
        "(`--config path` or `BANDITROUTE_CONFIG=path`, top-level keys named like the settings),",
        "then the defaults below. Generated by `python -m banditroute.service.config`.",
        "",
        "Every `banditroute` command that reads or writes state (`serve`, `db`, `models`,",
        "`policies`, `routes`, `keys`, `experiments`, `evaluate`) takes `--config`,",
        "`--database-url` and `--data-dir`, and opens the database the same way: the external",
        "`database_url` when set (checked, never migrated implicitly: `banditroute db upgrade` or",
        "`serve --migrate`), otherwise the embedded PostgreSQL under `data_dir`, started or joined",
        "(when `serve` runs) and migrated. Commands that talk to a running server instead",
        "(`experiments ... --address HOST:PORT`) take `--address` (`BANDITROUTE_ADDRESS`),",
        "`--admin-token` (`BANDITROUTE_ADMIN_TOKEN`) and, for TLS, `--tls-ca-file` (and",
        "`--tls-cert-file`, `--tls-key-file` for mTLS).",
        "",
        "```toml",
        "# banditroute.toml",
        'database_url = "postgresql://banditroute@db.internal:5432/banditroute"',
        'host = "0.0.0.0"',
        "workers = 2",
        "require_api_keys = true",
        "```",
        "",
        "| setting | env var | default | description |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        if name == "data_dir":
            default = "see description"
        else:
            default = "unset" if field.default is None else f"`{field.default}`"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {default} | {description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
