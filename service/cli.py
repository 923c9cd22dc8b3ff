"""The ``banditroute`` command line: serve, database, models, policies, routes and API keys.

Every command reads :class:`~banditroute.service.config.Settings` (``--config`` file,
``BANDITROUTE_*`` env vars, then options). Without a database URL the embedded PostgreSQL under
``--data-dir`` is used: started (or joined, if ``serve`` runs) and migrated automatically. An
external database is never migrated implicitly: run ``banditroute db upgrade`` or pass ``serve
--migrate``. Domain errors are printed as one line and exit with status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from banditroute.service.config import Settings, load_settings
from banditroute.service.errors import BanditrouteError, InvalidArgument

__all__ = ["app"]

from banditroute.service.experiments.cli import experiments_app
from banditroute.service.replay.cli import evaluate_command, replay_command

app = typer.Typer(
    name="banditroute",
    help="Route every LLM request to the model that answers it best for the money.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)
models_app = typer.Typer(help="The model pool.", no_args_is_help=True)
policies_app = typer.Typer(help="Versioned bandit policies.", no_args_is_help=True)
routes_app = typer.Typer(help="Routes (named use cases).", no_args_is_help=True)
keys_app = typer.Typer(help="Per-tenant API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(policies_app, name="policies")
app.add_typer(routes_app, name="routes")
app.add_typer(keys_app, name="keys")
app.add_typer(experiments_app, name="experiments")
app.command("replay")(replay_command)
app.command("evaluate")(evaluate_command)

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
    typer.Option("--data-dir", help="Directory of the embedded PostgreSQL."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


# -- plumbing ----------------------------------------------------------------------------------


def _run(action: Callable[[], T]) -> T:
    """Run a command body; print a domain error as one line and exit 1."""
    try:
        return action()
    except BanditrouteError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None


def _settings(
    config: Path | None, database_url: str | None = None, data_dir: Path | None = None, **extra: Any
) -> Settings:
    return load_settings(config, database_url=database_url, data_dir=data_dir, **extra)


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """Yield a URL of a database at this banditroute's schema: the external one (checked, never
    migrated) or the embedded one (started or joined, then migrated)."""
    from banditroute.service.storage import migrate
    from banditroute.service.storage.database import check_schema, create_engine

    if settings.database_url is not None:
        engine = create_engine(
            settings.database_url, connect_timeout_s=settings.db_connect_timeout_s
        )
        try:
            check_schema(engine)
        finally:
            engine.dispose()
        yield settings.database_url
        return
    from banditroute.service.storage.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    try:
        migrate.upgrade(url)
        yield url
    finally:
        server.stop()


@contextmanager
def _admin_session(settings: Settings) -> Iterator[Any]:
    from banditroute.service.core.admin import transaction
    from banditroute.service.storage.database import create_engine

    with _database(settings) as url:
        engine = create_engine(url, connect_timeout_s=settings.db_connect_timeout_s)
        try:
            with transaction(engine) as session:
                yield session
        finally:
            engine.dispose()


def _print_rows(rows: Sequence[Any], as_json: bool, columns: Sequence[str]) -> None:
    records = [asdict(r) for r in rows]
    if as_json:
        typer.echo(json.dumps(records, default=str, indent=2))
        return
    if not records:
        typer.echo("(none)")
        return
    table = [[_cell(rec[c]) for c in columns] for rec in records]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(all)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


# -- serve -------------------------------------------------------------------------------------


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="gRPC port (default 50051; 0 = any).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus metrics port (default 9464; 0 = off).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes sharing the port (default 1).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    data_dir: DataDirOpt = None,
    demo: Annotated[
        bool | None,
        typer.Option("--demo/--no-demo", help="Register a demo model pool and route 'default'."),
    ] = None,
    migrate_db: Annotated[
        bool,
        typer.Option("--migrate", help="Migrate an external database before serving."),
    ] = False,
    database_url: DatabaseUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the gRPC service (embedded PostgreSQL unless a database URL is configured)."""
    _run(
        lambda: _serve(
            _settings(
                config,
                database_url,
                data_dir,
                port=port,
                metrics_port=metrics_port,
                workers=workers,
                host=host,
                demo=demo,
            ),
            migrate_db,
        )
    )


def _serve(settings: Settings, migrate_db: bool) -> None:
    if settings.database_url is not None:
        _prepare_external(settings, migrate_db)
    from banditroute.service.server import serve as serve_forever

    serve_forever(settings)


def _prepare_external(settings: Settings, migrate_db: bool) -> None:
    """Refuse an external database at another schema (unless --migrate) and add partitions."""
    from banditroute.service.storage import migrate
    from banditroute.service.storage.database import check_schema, create_engine
    from banditroute.service.storage.partitions import ensure_decision_partitions

    url = settings.database_url
    assert url is not None
    if migrate_db:
        migrate.upgrade(url)
    engine = create_engine(url, connect_timeout_s=settings.db_connect_timeout_s)
    try:
        check_schema(engine)
        with engine.begin() as conn:
            ensure_decision_partitions(conn)
    finally:
        engine.dispose()


# -- db ----------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Migrate the database schema (Alembic) to the newest revision."""
    _run(lambda: _db_upgrade(_settings(config, database_url, data_dir), revision))


def _db_upgrade(settings: Settings, revision: str) -> None:
    from banditroute.service.storage import migrate

    url, server = _raw_database(settings)
    try:
        before = migrate.current(url)
        migrate.upgrade(url, revision)
        typer.echo(f"database schema: {before or 'empty'} -> {migrate.current(url)}")
    finally:
        if server is not None:
            server.stop()


def _raw_database(settings: Settings) -> tuple[str, Any]:
    """The database URL without schema checks (starting the embedded server if needed)."""
    if settings.database_url is not None:
        return settings.database_url, None
    from banditroute.service.storage.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.data_dir)
    return server.start(), server


@db_app.command("current")
def db_current(
    database_url: DatabaseUrlOpt = None, data_dir: DataDirOpt = None, config: ConfigOpt = None
) -> None:
    """Print the schema revision of the database and the one this banditroute needs."""
    _run(lambda: _db_current(_settings(config, database_url, data_dir)))


def _db_current(settings: Settings) -> None:
    from banditroute.service.storage import migrate

    url, server = _raw_database(settings)
    try:
        typer.echo(f"current: {migrate.current(url) or 'empty'}")
        typer.echo(f"head:    {migrate.head()}")
    finally:
        if server is not None:
            server.stop()


@db_app.command("maintain")
def db_maintain(
    retention_days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Drop months of decisions (and their outcomes) older than this many days."
        ),
    ] = None,
    months_ahead: Annotated[
        int, typer.Option(min=0, max=24, help="Create partitions for this many next months.")
    ] = 2,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create upcoming monthly partitions of decisions; apply retention. Run it daily."""
    _run(
        lambda: _db_maintain(
            _settings(config, database_url, data_dir), retention_days, months_ahead
        )
    )


def _db_maintain(settings: Settings, retention_days: int | None, months_ahead: int) -> None:
    from banditroute.service.storage.database import create_engine
    from banditroute.service.storage.partitions import apply_retention, ensure_decision_partitions

    with _database(settings) as url:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                created = ensure_decision_partitions(conn, months_ahead=months_ahead)
                result = apply_retention(conn, retention_days) if retention_days else None
        finally:
            engine.dispose()
    typer.echo(f"partitions created: {', '.join(created) or 'none'}")
    if result is not None:
        typer.echo(
            f"retention cutoff {result.cutoff:%Y-%m-%d %H:%M} UTC: dropped "
            f"{', '.join(result.dropped_partitions) or 'no partitions'}, "
            f"{result.deleted_outcomes} outcomes, {result.deleted_feedback} feedback"
        )


# -- models ------------------------------------------------------------------------------------


@models_app.command("add")
def models_add(
    model_id: Annotated[str, typer.Argument(help="Model id as your backend names it.")],
    provider: Annotated[str, typer.Option(help="Provider, e.g. openai.")] = "",
    input_price: Annotated[float, typer.Option(help="USD per 1M input tokens.")] = 0.0,
    output_price: Annotated[float, typer.Option(help="USD per 1M output tokens.")] = 0.0,
    enabled: Annotated[bool, typer.Option("--enabled/--disabled", help="Routable.")] = True,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a model to the pool, or update it."""
    _run(
        lambda: _models_add(
            _settings(config, database_url, data_dir),
            model_id,
            provider,
            input_price,
            output_price,
            enabled,
        )
    )


def _models_add(
    settings: Settings, model_id: str, provider: str, price_in: float, price_out: float, on: bool
) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        model = admin.put_model(
            session,
            model_id,
            provider=provider,
            input_usd_per_mtok=price_in,
            output_usd_per_mtok=price_out,
            enabled=on,
            actor="cli",
        )
    typer.echo(
        f"model {model.id}: {model.provider or '-'}, ${model.input_usd_per_mtok:g} in / "
        f"${model.output_usd_per_mtok:g} out per 1M tokens, "
        f"{'enabled' if model.enabled else 'disabled'}"
    )


@models_app.command("list")
def models_list(
    include_disabled: Annotated[
        bool, typer.Option("--all", help="Include disabled models.")
    ] = False,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the model pool."""
    _run(lambda: _models_list(_settings(config, database_url, data_dir), include_disabled, as_json))


def _models_list(settings: Settings, include_disabled: bool, as_json: bool) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        rows = admin.list_models(session, include_disabled)
    _print_rows(
        rows, as_json, ["id", "provider", "input_usd_per_mtok", "output_usd_per_mtok", "enabled"]
    )


# -- policies ----------------------------------------------------------------------------------


def _parse_params(params: Sequence[str], hyperparameters: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if hyperparameters:
        try:
            loaded = json.loads(hyperparameters)
        except ValueError as exc:
            raise InvalidArgument(f"--hyperparameters is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidArgument("--hyperparameters must be a JSON object")
        values.update(loaded)
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--param {item!r} must look like name=value")
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


@policies_app.command("put")
def policies_put(
    name: Annotated[str, typer.Argument(help="Policy name; a new version is added if it exists.")],
    algorithm: Annotated[
        str,
        typer.Option(help="linucb, thompson, epsilon_greedy, river, uniform or fixed."),
    ] = "linucb",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Hyperparameter name=value (value parsed as JSON)."),
    ] = None,
    hyperparameters: Annotated[
        str | None, typer.Option(help="Hyperparameters as a JSON object.")
    ] = None,
    cost_weight: Annotated[float, typer.Option(help="Reward penalty per USD.")] = 0.0,
    latency_weight: Annotated[float, typer.Option(help="Reward penalty per second.")] = 0.0,
    feedback_weight: Annotated[
        float, typer.Option(help="Weight of human feedback against outcome quality, in [0, 1].")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the policy's exploration.")] = 0,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a policy or a new version of it."""
    _run(
        lambda: _policies_put(
            _settings(config, database_url, data_dir),
            name,
            algorithm,
            _parse_params(param or [], hyperparameters),
            {
                "cost_weight": cost_weight,
                "latency_weight": latency_weight,
                "feedback_weight": feedback_weight,
            },
            seed,
        )
    )


def _policies_put(
    settings: Settings,
    name: str,
    algorithm: str,
    hyperparameters: dict[str, Any],
    weights: dict[str, float],
    seed: int,
) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        policy = admin.put_policy(
            session,
            name,
            algorithm,
            hyperparameters=hyperparameters,
            seed=seed,
            actor="cli",
            **weights,
        )
    typer.echo(
        f"policy {policy.name} version {policy.version}: {policy.algorithm} "
        f"{json.dumps(policy.hyperparameters, sort_keys=True)}"
    )


@policies_app.command("list")
def policies_list(
    name: Annotated[str, typer.Option(help="Only versions of this policy.")] = "",
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List policies and their versions."""
    _run(lambda: _policies_list(_settings(config, database_url, data_dir), name, as_json))


def _policies_list(settings: Settings, name: str, as_json: bool) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        rows = admin.list_policies(session, name)
    _print_rows(
        rows,
        as_json,
        [
            "name",
            "version",
            "algorithm",
            "hyperparameters",
            "cost_weight",
            "latency_weight",
            "feedback_weight",
            "seed",
        ],
    )


# -- routes ------------------------------------------------------------------------------------


@routes_app.command("put")
def routes_put(
    name: Annotated[str, typer.Argument(help="Route name, e.g. default.")],
    policy: Annotated[str, typer.Option(help="Policy serving the route.")],
    policy_version: Annotated[int, typer.Option(help="Pinned version; 0 = latest.")] = 0,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model the route may choose (repeat; none = all enabled)."),
    ] = None,
    tenant: Annotated[str, typer.Option(help="Owning tenant; empty = shared.")] = "",
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create or update a route."""
    _run(
        lambda: _routes_put(
            _settings(config, database_url, data_dir),
            name,
            policy,
            policy_version,
            model or [],
            tenant,
        )
    )


def _routes_put(
    settings: Settings, name: str, policy: str, version: int, models: list[str], tenant: str
) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        route = admin.put_route(
            session,
            name,
            policy,
            tenant=tenant,
            policy_version=version,
            models=models,
            actor="cli",
        )
    typer.echo(
        f"route {route.tenant or '(shared)'}/{route.name}: policy {route.policy}"
        f"{'@' + str(route.policy_version) if route.policy_version else ' (latest)'}, "
        f"models {_cell(route.models)}"
    )


@routes_app.command("list")
def routes_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's routes.")] = None,
    as_json: JsonOpt = False,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List routes."""
    _run(lambda: _routes_list(_settings(config, database_url, data_dir), tenant, as_json))


def _routes_list(settings: Settings, tenant: str | None, as_json: bool) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        rows = admin.list_routes(session, tenant)
    _print_rows(rows, as_json, ["tenant", "name", "policy", "policy_version", "models"])


# -- keys --------------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    label: Annotated[str, typer.Option(help="Free-text label, e.g. the calling service.")] = "",
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Issue an API key; the key is printed once and only its hash is stored."""
    _run(lambda: _keys_create(_settings(config, database_url, data_dir), tenant, label))


def _keys_create(settings: Settings, tenant: str, label: str) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        created = admin.create_api_key(session, tenant, label, actor="cli")
    typer.echo(f"key_id: {created.key_id}")
    typer.echo(f"key:    {created.key}")
    typer.echo("(store the key now: it cannot be shown again)", err=True)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (key_...).")],
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke an API key (idempotent)."""
    _run(lambda: _keys_revoke(_settings(config, database_url, data_dir), key_id))


def _keys_revoke(settings: Settings, key_id: str) -> None:
    from banditroute.service.core import admin

    with _admin_session(settings) as session:
        info = admin.revoke_api_key(session, key_id, actor="cli")
    typer.echo(f"revoked {info.key_id} (tenant {info.tenant or '(shared)'})")


if __name__ == "__main__":  # pragma: no cover
    app()
