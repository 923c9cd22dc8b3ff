"""The ``banditroute`` command line: the Typer app, ``serve`` and ``db``; it registers the groups.

Every command reads :class:`~banditroute.service.config.Settings` (``--config`` file,
``BANDITROUTE_*`` env vars, then options) and gets its database from
:func:`~banditroute.service.storage.database.open_database`: without a database URL the embedded
PostgreSQL under ``--data-dir`` is used, started (or joined, if ``serve`` runs) and migrated. An
external database is never migrated implicitly: run ``banditroute db upgrade`` or pass ``serve
--migrate``. Domain errors are printed as one line and exit with status 1.

The groups live next to what they manage: :mod:`banditroute.service.cli_config` (models,
policies, routes, keys), :mod:`banditroute.service.experiments.cli` and
:mod:`banditroute.service.replay.cli` (``replay``, ``evaluate``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from banditroute.service import supervisor
from banditroute.service.cli_common import (
    Target,
    database_engine,
    run_command,
    with_target,
)
from banditroute.service.cli_config import keys_app, models_app, policies_app
from banditroute.service.cli_routes import routes_app
from banditroute.service.config import Settings
from banditroute.service.experiments.cli import experiments_app
from banditroute.service.replay.cli import evaluate_command, replay_command
from banditroute.service.storage import migrate
from banditroute.service.storage.database import open_database
from banditroute.service.storage.partitions import apply_retention, ensure_decision_partitions

__all__ = ["app"]

app = typer.Typer(
    name="banditroute",
    help="Route every LLM request to the model that answers it best for the money.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)


# -- serve -------------------------------------------------------------------------------------


@app.command()
@with_target()
def serve(
    port: Annotated[int | None, typer.Option(help="gRPC port (default 50051; 0 = any).")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus metrics port (default 9464; 0 = off).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes sharing the port (default 1).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    demo: Annotated[
        bool | None,
        typer.Option("--demo/--no-demo", help="Register a demo model pool and route 'default'."),
    ] = None,
    migrate_db: Annotated[
        bool,
        typer.Option("--migrate", help="Migrate an external database before serving."),
    ] = False,
    *,
    target: Target,
) -> None:
    """Run the gRPC service (embedded PostgreSQL unless a database URL is configured)."""
    run_command(
        lambda: supervisor.serve(
            target.settings(
                port=port,
                metrics_port=metrics_port,
                workers=workers,
                host=host,
                demo=demo,
            ),
            migrate=migrate_db,
        )
    )


# -- db ----------------------------------------------------------------------------------------


@db_app.command("upgrade")
@with_target()
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    *,
    target: Target,
) -> None:
    """Migrate the database schema (Alembic) to the newest revision."""
    run_command(lambda: _db_upgrade(target.settings(), revision))


def _db_upgrade(settings: Settings, revision: str) -> None:
    with open_database(settings, schema="any") as database:
        before = migrate.current(database.url)
        migrate.upgrade(database.url, revision)
        typer.echo(f"database schema: {before or 'empty'} -> {migrate.current(database.url)}")


@db_app.command("current")
@with_target()
def db_current(*, target: Target) -> None:
    """Print the schema revision of the database and the one this banditroute needs."""
    run_command(lambda: _db_current(target.settings()))


def _db_current(settings: Settings) -> None:
    with open_database(settings, schema="any") as database:
        typer.echo(f"current: {migrate.current(database.url) or 'empty'}")
        typer.echo(f"head:    {migrate.head()}")


@db_app.command("maintain")
@with_target()
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
    *,
    target: Target,
) -> None:
    """Create upcoming monthly partitions of decisions; apply retention. Run it daily."""
    run_command(lambda: _db_maintain(target.settings(), retention_days, months_ahead))


def _db_maintain(settings: Settings, retention_days: int | None, months_ahead: int) -> None:
    with database_engine(settings) as engine, engine.begin() as conn:
        created = ensure_decision_partitions(conn, months_ahead=months_ahead)
        result = apply_retention(conn, retention_days) if retention_days else None
    typer.echo(f"partitions created: {', '.join(created) or 'none'}")
    if result is not None:
        typer.echo(
            f"retention cutoff {result.cutoff:%Y-%m-%d %H:%M} UTC: dropped "
            f"{', '.join(result.dropped_partitions) or 'no partitions'}, "
            f"{result.deleted_outcomes} outcomes, {result.deleted_feedback} feedback"
        )


# -- the groups and the replay commands (registered after serve, which --help lists first) ---

app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(policies_app, name="policies")
app.add_typer(routes_app, name="routes")
app.add_typer(keys_app, name="keys")
app.add_typer(experiments_app, name="experiments")
app.command("replay")(replay_command)
app.command("evaluate")(evaluate_command)


if __name__ == "__main__":  # pragma: no cover
    app()
