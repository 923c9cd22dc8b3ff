"""``banditroute models|policies|keys``: the routing configuration, on the database.

Every command works on the database the settings name (``--database-url``, ``--data-dir`` of the
embedded PostgreSQL, ``--config``), through :mod:`banditroute.service.core.admin`, the code behind
the Admin RPCs; changes are audited and reach running servers by ``NOTIFY``. Routes and their
budgets are in :mod:`banditroute.service.cli_routes`. ``policies state`` shows what a policy
has learnt, rebuilt from its snapshot and the event log as every server process does
(:class:`~banditroute.service.core.follower.EventFollower`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from banditroute.service.cli_common import (
    JsonOpt,
    Target,
    admin_session,
    database_engine,
    print_json,
    print_rows,
    run_command,
    with_target,
)
from banditroute.service.config import Settings
from banditroute.service.core import admin, api_keys
from banditroute.service.core.assignment import PolicyKey
from banditroute.service.core.follower import EventFollower
from banditroute.service.core.policies import PolicyRegistry
from banditroute.service.errors import InvalidArgument

__all__ = ["keys_app", "models_app", "policies_app"]

models_app = typer.Typer(help="The model pool.", no_args_is_help=True)
policies_app = typer.Typer(help="Versioned bandit policies.", no_args_is_help=True)
keys_app = typer.Typer(help="Per-tenant API keys.", no_args_is_help=True)


# -- models ------------------------------------------------------------------------------------


@models_app.command("add")
@with_target()
def models_add(
    model_id: Annotated[str, typer.Argument(help="Model id as your backend names it.")],
    provider: Annotated[str, typer.Option(help="Provider, e.g. openai.")] = "",
    input_price: Annotated[float, typer.Option(help="USD per 1M input tokens.")] = 0.0,
    output_price: Annotated[float, typer.Option(help="USD per 1M output tokens.")] = 0.0,
    enabled: Annotated[bool, typer.Option("--enabled/--disabled", help="Routable.")] = True,
    *,
    target: Target,
) -> None:
    """Add a model to the pool, or update it."""
    run_command(
        lambda: _models_add(
            target.settings(),
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
    with admin_session(settings) as session:
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
@with_target()
def models_list(
    include_disabled: Annotated[
        bool, typer.Option("--all", help="Include disabled models.")
    ] = False,
    as_json: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """List the model pool."""
    run_command(lambda: _models_list(target.settings(), include_disabled, as_json))


def _models_list(settings: Settings, include_disabled: bool, as_json: bool) -> None:
    with admin_session(settings) as session:
        rows = admin.list_models(session, include_disabled)
    print_rows(
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
@with_target()
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
    *,
    target: Target,
) -> None:
    """Create a policy or a new version of it."""
    run_command(
        lambda: _policies_put(
            target.settings(),
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
    with admin_session(settings) as session:
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
@with_target()
def policies_list(
    name: Annotated[str, typer.Option(help="Only versions of this policy.")] = "",
    as_json: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """List policies and their versions."""
    run_command(lambda: _policies_list(target.settings(), name, as_json))


def _policies_list(settings: Settings, name: str, as_json: bool) -> None:
    with admin_session(settings) as session:
        rows = admin.list_policies(session, name)
    print_rows(
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


@policies_app.command("state")
@with_target()
def policies_state(
    name: Annotated[
        str | None, typer.Argument(help="Policy name; none = the latest version of every policy.")
    ] = None,
    version: Annotated[int, typer.Option(min=0, help="Policy version; 0 = latest.")] = 0,
    as_json: JsonOpt = False,
    *,
    target: Target,
) -> None:
    """Show what a policy has learnt: per model, updates and mean reward (as GetPolicyState)."""
    run_command(lambda: _policies_state(target.settings(), name, version, as_json))


def _policies_state(settings: Settings, name: str | None, version: int, as_json: bool) -> None:
    with database_engine(settings) as engine:
        with admin.transaction(engine) as session:
            if name:
                infos = [admin.get_policy(session, name, version)]
            else:
                latest: dict[str, admin.PolicyInfo] = {}
                for info in admin.list_policies(session):
                    if info.version >= latest.get(info.name, info).version:
                        latest[info.name] = info
                infos = [latest[n] for n in sorted(latest)]
        registry = asyncio.run(_learnt(engine, settings.feature_dim))
    states = [_state(info, registry) for info in infos]
    if as_json:
        print_json(states)
        return
    if not states:
        typer.echo("(none)")
    for n, state in enumerate(states):
        typer.echo(("\n" if n else "") + _state_header(state))
        print_rows(state["arms"], False, ["model", "updates", "mean_reward", "active"])


async def _learnt(engine: Engine, dim: int) -> PolicyRegistry:
    """Every policy as a server process has it: restored from its snapshot, then the log."""
    registry = PolicyRegistry(dim)
    follower = EventFollower(engine, registry, snapshot_every=0)  # read-only: no snapshots
    await follower.start()
    await follower.stop()
    return registry


def _state(info: admin.PolicyInfo, registry: PolicyRegistry) -> dict[str, Any]:
    live = registry.get(PolicyKey(info.name, info.version))
    summary = live.policy.summary() if live is not None else {}
    arms = [
        {
            "model": model,
            "updates": int(s["updates"]),
            "mean_reward": None if s["mean_reward"] is None else float(s["mean_reward"]),
            "active": bool(s.get("active", True)),
        }
        for model, s in summary.items()
    ]
    return {
        "policy": info.name,
        "version": info.version,
        "algorithm": info.algorithm,
        "loaded": live is not None,
        "last_event_id": int(live.last_event_id) if live is not None else 0,
        "updates": sum(a["updates"] for a in arms),
        "groups": live.policy.groups if live is not None else 0,
        "group_prior": live.policy.group_prior if live is not None else 0.0,
        "arms": arms,
    }


def _state_header(state: dict[str, Any]) -> str:
    head = f"policy {state['policy']} version {state['version']} ({state['algorithm']})"
    if not state["loaded"]:
        return f"{head}: cannot be built (see the server log)"
    groups = (f", {state['groups']} request groups (effects' prior {state['group_prior']:.3g})"
              if state["groups"] else "")
    return f"{head}: {state['updates']} updates{groups}, log position {state['last_event_id']}"


# -- keys --------------------------------------------------------------------------------------


@keys_app.command("create")
@with_target()
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    label: Annotated[str, typer.Option(help="Free-text label, e.g. the calling service.")] = "",
    *,
    target: Target,
) -> None:
    """Issue an API key; the key is printed once and only its hash is stored."""
    run_command(lambda: _keys_create(target.settings(), tenant, label))


def _keys_create(settings: Settings, tenant: str, label: str) -> None:
    with admin_session(settings) as session:
        created = api_keys.create_api_key(session, tenant, label, actor="cli")
    typer.echo(f"key_id: {created.key_id}")
    typer.echo(f"key:    {created.key}")
    typer.echo("(store the key now: it cannot be shown again)", err=True)


@keys_app.command("revoke")
@with_target()
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (key_...).")],
    *,
    target: Target,
) -> None:
    """Revoke an API key (idempotent)."""
    run_command(lambda: _keys_revoke(target.settings(), key_id))


def _keys_revoke(settings: Settings, key_id: str) -> None:
    with admin_session(settings) as session:
        info = api_keys.revoke_api_key(session, key_id, actor="cli")
    typer.echo(f"revoked {info.key_id} (tenant {info.tenant or '(shared)'})")
