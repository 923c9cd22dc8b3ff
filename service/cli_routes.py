"""``banditroute routes put|status|list``: named use cases and their budgets, on the database.

Like :mod:`banditroute.service.cli_config`, every command works on the database the settings
name, through :mod:`banditroute.service.core.admin`; ``routes status`` shows a budgeted route's
period spend, target, pace and the pacing controller's state.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from banditroute.service.cli_common import (
    JsonOpt,
    Target,
    admin_session,
    cell,
    database_engine,
    print_json,
    print_rows,
    run_command,
    with_target,
)
from banditroute.service.config import Settings
from banditroute.service.core import admin
from banditroute.service.core.budgets import status_fields
from banditroute.service.core.follower import EventFollower
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.core.route_budget import RouteBudget, check_budget
from banditroute.service.errors import NotFound

__all__ = ["routes_app"]

routes_app = typer.Typer(help="Routes (named use cases).", no_args_is_help=True)


# -- routes ------------------------------------------------------------------------------------


@routes_app.command("put")
@with_target()
def routes_put(
    name: Annotated[str, typer.Argument(help="Route name, e.g. default.")],
    policy: Annotated[str, typer.Option(help="Policy serving the route.")],
    policy_version: Annotated[int, typer.Option(help="Pinned version; 0 = latest.")] = 0,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A model the route may choose (repeat; none = all enabled)."),
    ] = None,
    tenant: Annotated[str, typer.Option(help="Owning tenant; empty = shared.")] = "",
    budget_per_request: Annotated[float | None, typer.Option(
        help="Budget: target mean spend per request, USD (pacing shifts the cost/quality "
             "trade-off; requests are never refused).")] = None,
    budget: Annotated[float | None, typer.Option(
        help="Budget: USD per --budget-period.")] = None,
    budget_period: Annotated[str | None, typer.Option(
        help="hour | day | month (calendar-aligned UTC), with --budget.")] = None,
    hard_cap: Annotated[bool, typer.Option(
        "--hard-cap", help="With --budget: once the period's money is gone, only the "
                           "cheapest eligible model.")] = False,
    *,
    target: Target,
) -> None:
    """Create or update a route (the budget options replace its budget; none = no budget)."""
    route_budget = RouteBudget(budget_per_request, budget, budget_period, hard_cap)
    run_command(
        lambda: _routes_put(
            target.settings(),
            name,
            policy,
            policy_version,
            model or [],
            tenant,
            route_budget,
        )
    )


def _routes_put(
    settings: Settings, name: str, policy: str, version: int, models: list[str], tenant: str,
    budget: RouteBudget | None = None,
) -> None:
    checked = check_budget(budget)  # before opening the database: bad input changes nothing
    with admin_session(settings) as session:
        route = admin.put_route(
            session,
            name,
            policy,
            tenant=tenant,
            policy_version=version,
            models=models,
            budget=checked,
            actor="cli",
        )
    typer.echo(
        f"route {route.tenant or '(shared)'}/{route.name}: policy {route.policy}"
        f"{'@' + str(route.policy_version) if route.policy_version else ' (latest)'}, "
        f"models {cell(route.models)}{_budget_text(route.budget)}"
    )


def _budget_text(budget: RouteBudget | None) -> str:
    return "" if budget is None else ", budget " + budget.describe()


@routes_app.command("status")
@with_target()
def routes_status(
    name: Annotated[str, typer.Argument(help="Route name.")],
    tenant: Annotated[str, typer.Option(help="Owning tenant; empty = shared.")] = "",
    as_json: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """A route's budget: this period's spend, target, pace, current lambda, projection."""
    run_command(lambda: _routes_status(target.settings(), name, tenant, as_json))


def _routes_status(settings: Settings, name: str, tenant: str, as_json: bool) -> None:
    with database_engine(settings) as engine:
        follower = asyncio.run(_followed(engine, settings.feature_dim))
    entry = follower.config.route(tenant, name)
    if entry is None:
        raise NotFound(f"route {name[:128]!r} not found")
    now = datetime.now(UTC)
    status = follower.budgets.status(entry.tenant, entry.name, now)
    row: dict[str, Any] = {"tenant": entry.tenant, "route": entry.name,
                           "budget": None if entry.budget is None else {
                               "budget_per_request_usd": entry.budget.budget_per_request_usd,
                               "budget_usd": entry.budget.budget_usd,
                               "budget_period": entry.budget.budget_period,
                               "budget_hard_cap": entry.budget.budget_hard_cap}}
    if status is not None:
        row.update(status_fields(status))
    if as_json:
        print_json(row)
        return
    if status is None:
        typer.echo(f"route {entry.tenant or '(shared)'}/{entry.name}: no budget")
        return
    typer.echo(f"route {entry.tenant or '(shared)'}/{entry.name}{_budget_text(entry.budget)}")
    for key, value in row.items():
        if key in ("tenant", "route", "budget"):
            continue
        shown = f"{value:.6g}" if isinstance(value, float) else value
        typer.echo(f"  {key:28s} {'-' if value is None else shown}")
    if row.get("period_budget_spent"):
        typer.echo("  (this period's budget is spent: until the period ends, requests go to "
                   "the cheapest model)")


async def _followed(engine: Engine, dim: int) -> EventFollower:
    """A follower that has read the whole log (read-only: no snapshots), then stopped."""
    follower = EventFollower(engine, PolicyRegistry(dim), snapshot_every=0)
    await follower.start()
    await follower.stop()
    return follower


@routes_app.command("list")
@with_target()
def routes_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's routes.")] = None,
    as_json: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """List routes."""
    run_command(lambda: _routes_list(target.settings(), tenant, as_json))


def _routes_list(settings: Settings, tenant: str | None, as_json: bool) -> None:
    with admin_session(settings) as session:
        rows = admin.list_routes(session, tenant)
    print_rows(rows, as_json, ["tenant", "name", "policy", "policy_version", "models"])
