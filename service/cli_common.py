"""What every ``banditroute`` command shares: options, settings, the database, errors, output.

Commands on state open the database through
:func:`~banditroute.service.storage.database.open_database` (``--database-url``, ``--data-dir``,
``--config``); commands that talk to a running server take ``--address``, the TLS options and
``--admin-token`` (:func:`admin_channel`). A domain error is printed as one line and exits 1.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from banditroute.service.config import Settings, load_settings
from banditroute.service.errors import BanditrouteError, InvalidArgument, Unavailable
from banditroute.service.storage.database import SchemaMode, create_engine, open_database

__all__ = [
    "AddressOpt",
    "AdminTokenOpt",
    "ConfigOpt",
    "DataDirOpt",
    "DatabaseUrlOpt",
    "JsonOpt",
    "Target",
    "TlsCaOpt",
    "TlsCertOpt",
    "TlsKeyOpt",
    "admin_channel",
    "admin_session",
    "cell",
    "database_engine",
    "print_json",
    "print_rows",
    "run_command",
    "settings_from",
    "with_target",
]

T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML settings file (default: $BANDITROUTE_CONFIG)."),
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (default: $BANDITROUTE_DATABASE_URL; unset = embedded database).",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Directory of the embedded PostgreSQL (default: $BANDITROUTE_DATA_DIR)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        envvar="BANDITROUTE_ADDRESS",
        help="host:port of a running server: talk to it over gRPC instead of the database.",
    ),
]
AdminTokenOpt = Annotated[
    str,
    typer.Option(
        "--admin-token", envvar="BANDITROUTE_ADMIN_TOKEN", help="Admin bearer token (--address)."
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca-file", help="PEM CA bundle to verify the server by; turns TLS on (--address)."
    ),
]
TlsCertOpt = Annotated[
    Path | None,
    typer.Option("--tls-cert-file", help="PEM client certificate chain, for mTLS (--address)."),
]
TlsKeyOpt = Annotated[
    Path | None, typer.Option("--tls-key-file", help="PEM key of --tls-cert-file (--address).")
]


@dataclass(frozen=True)
class Target:
    """Where a command acts: the database its settings name or, with ``address``, a server."""

    database_url: str | None = None
    data_dir: Path | None = None
    config: Path | None = None
    address: str | None = None
    admin_token: str = ""
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def settings(self, **extra: Any) -> Settings:
        """Settings from ``--config``, ``BANDITROUTE_*``, these options and ``extra``."""
        return settings_from(self.config, self.database_url, self.data_dir, **extra)


_DATABASE_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("database_url", DatabaseUrlOpt, None),
    ("data_dir", DataDirOpt, None),
    ("config", ConfigOpt, None),
)
_SERVER_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("address", AddressOpt, None),
    ("admin_token", AdminTokenOpt, ""),
    ("tls_ca", TlsCaOpt, None),
    ("tls_cert", TlsCertOpt, None),
    ("tls_key", TlsKeyOpt, None),
)
F = TypeVar("F", bound=Callable[..., Any])
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def with_target(*, server: bool = False) -> Callable[[F], F]:
    """Give a command ``--database-url``, ``--data-dir`` and ``--config`` (with ``server``, also
    ``--address``, ``--admin-token`` and the TLS options), passed to it as ``target: Target``.

    The options are defined once here rather than in every command's signature.
    """
    options = _DATABASE_OPTIONS + (_SERVER_OPTIONS if server else ())

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name != "target"]
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, kind, default in options
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            target = Target(**{name: kwargs.pop(name) for name, _, _ in options})
            return fn(*args, target=target, **kwargs)

        command.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        return command  # type: ignore[return-value]

    return decorate


def run_command(action: Callable[[], T]) -> T:
    """Run a command body; print a domain error as one line and exit 1."""
    try:
        return action()
    except BanditrouteError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None


def settings_from(
    config: Path | None, database_url: str | None = None, data_dir: Path | None = None, **extra: Any
) -> Settings:
    """Settings from the ``--config`` file, ``BANDITROUTE_*`` and the options given."""
    return load_settings(config, database_url=database_url, data_dir=data_dir, **extra)


@contextmanager
def database_engine(settings: Settings, schema: SchemaMode = "check") -> Iterator[Engine]:
    """An engine on the database ``settings`` name, opened by ``open_database``."""
    with open_database(settings, schema=schema) as database:
        engine = create_engine(
            database.url, pool_size=1, connect_timeout_s=settings.db_connect_timeout_s
        )
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def admin_session(settings: Settings) -> Iterator[Session]:
    """One transaction on the database, committed when the block ends without an error."""
    from banditroute.service.core.admin import transaction

    with database_engine(settings) as engine, transaction(engine) as session:
        yield session


def cell(value: Any) -> str:
    """A table cell: lists comma-joined (``(all)`` when empty), dicts as JSON."""
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(all)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON; numbers stay numbers, other values become strings."""
    typer.echo(json.dumps(data, default=str, indent=2))


def print_rows(rows: Sequence[Any], as_json: bool, columns: Sequence[str]) -> None:
    """Print dataclass rows as a JSON list or as an aligned table of ``columns``."""
    records = [asdict(r) if is_dataclass(r) else dict(r) for r in rows]  # type: ignore[arg-type]
    if as_json:
        print_json(records)
        return
    if not records:
        typer.echo("(none)")
        return
    table = [[cell(rec[c]) for c in columns] for rec in records]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _read(path: Path | None, option: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{option} {str(path)!r}: {exc.strerror or exc}") from None


@contextmanager
def admin_channel(
    address: str,
    *,
    admin_token: str = "",
    tls_ca_file: Path | None = None,
    tls_cert_file: Path | None = None,
    tls_key_file: Path | None = None,
    timeout_s: float = 10.0,
) -> Iterator[Callable[[str, Any], Any]]:
    """Yield ``call(method, request)`` on the Admin service of the server at ``address``.

    TLS when ``tls_ca_file`` (or a client certificate, for mTLS) is given. A server that cannot
    be reached raises :class:`Unavailable` naming ``--address``; any other failed RPC is printed
    as ``error: <STATUS>: <details>`` and exits 1.
    """
    import grpc

    from banditroute.v1 import admin_pb2_grpc

    if (tls_cert_file is None) != (tls_key_file is None):
        raise InvalidArgument("--tls-cert-file and --tls-key-file go together")
    if tls_ca_file is not None or tls_cert_file is not None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca_file, "--tls-ca-file"),
            private_key=_read(tls_key_file, "--tls-key-file"),
            certificate_chain=_read(tls_cert_file, "--tls-cert-file"),
        )
        channel = grpc.secure_channel(address, creds)
    else:
        channel = grpc.insecure_channel(address)
    stub = admin_pb2_grpc.AdminStub(channel)
    metadata = [("authorization", f"Bearer {admin_token}")] if admin_token else []

    def call(method: str, request: Any) -> Any:
        try:
            return getattr(stub, method)(request, metadata=metadata, timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(
                    f"cannot reach a banditroute server at --address {address} "
                    f"({code.name}: {details})"
                ) from None
            typer.echo(f"error: {code.name}: {details}", err=True)
            raise typer.Exit(code=1) from None

    try:
        yield call
    finally:
        channel.close()
