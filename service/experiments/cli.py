"""``banditroute experiments ...``: A/B experiments of policies on a route.

Like every command on state, they work on the database the settings name (``--database-url``,
``--data-dir`` of the embedded PostgreSQL, ``--config``), through the same handlers as the Admin
RPCs (:class:`~banditroute.service.api.experiments.ExperimentRpcs`); running servers pick the
change up by ``NOTIFY``. With ``--address`` (env ``BANDITROUTE_ADDRESS``) they call a running
server's Admin API instead, with ``--admin-token`` and the TLS options. Variants are given as
``NAME=POLICY[@VERSION]:WEIGHT[:control|:shadow]``, e.g.::

    banditroute experiments create lin-vs-ts --route default \\
        --variant control=linucb:50:control --variant treatment=thompson:50 \\
        --max-reward-drop 0.05 --start
    banditroute experiments ramp lin-vs-ts control=80 treatment=20
    banditroute experiments status lin-vs-ts          # table; --json for JSON
    banditroute experiments promote lin-vs-ts treatment
    banditroute experiments rollback lin-vs-ts --reason "p95 regression"

Guardrails (``experiments create``): on by default from this CLI. When a variant is marked
``control``, a variant whose mean reward is below control's by more than
:data:`DEFAULT_MAX_REWARD_DROP` (0.05 on the reward scale) at the 95% confidence level, with at
least 100 outcomes a side, is stopped and its traffic goes to control. ``--max-reward-drop 0``
turns that rule off; ``--max-cost-increase`` is off unless given (0 means off). Without a
control variant there is nothing to compare against, and guardrails are off. The Admin API
itself keeps 0 = off (a proto3 number cannot tell "unset" from 0).

Errors print one line (``error: <message>``; over gRPC ``error: <STATUS>: <message>``) and exit
with code 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from google.protobuf.message import Message

from banditroute.service.api.experiments import ExperimentRpcs
from banditroute.service.cli_common import (
    Target,
    admin_channel,
    database_engine,
    run_command,
    with_target,
)
from banditroute.service.experiments.formatting import (
    format_experiment,
    format_status,
    message_json,
)
from banditroute.service.experiments.manager import ExperimentManager
from banditroute.v1 import admin_pb2

__all__ = ["DEFAULT_MAX_REWARD_DROP", "experiments_app", "parse_variant"]

#: Reward margin of the guardrail ``experiments create`` sets when a variant is marked control
#: and ``--max-reward-drop`` is not given: a tenth of a "good vs. bad" gap on the [0, 1] quality
#: scale, well above noise at 95% confidence once both sides have 100 outcomes.
DEFAULT_MAX_REWARD_DROP = 0.05

experiments_app = typer.Typer(
    name="experiments",
    help="A/B experiments of policies on a route (create, ramp, status, promote, rollback).",
    no_args_is_help=True,
)

Actor = Annotated[str, typer.Option("--actor", help="Who makes the change (audit log).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _reward_drop(given: float | None, variants: list[admin_pb2.Variant]) -> float:
    """The reward margin sent: as given, else the default when a control exists, else 0 (off).

    >>> _reward_drop(None, [admin_pb2.Variant(name="a", control=True)])
    0.05
    >>> _reward_drop(None, [admin_pb2.Variant(name="a")]), _reward_drop(0.0, [])
    (0.0, 0.0)
    """
    if given is not None:
        return given
    return DEFAULT_MAX_REWARD_DROP if any(v.control for v in variants) else 0.0


def parse_variant(text: str) -> admin_pb2.Variant:
    """Parse ``NAME=POLICY[@VERSION]:WEIGHT[:control|:shadow]``.

    Examples
    --------
    >>> v = parse_variant("treatment=thompson@2:20")
    >>> v.name, v.policy, v.policy_version, v.weight, v.control, v.shadow
    ('treatment', 'thompson', 2, 20.0, False, False)
    >>> parse_variant("base=linucb:80:control").control
    True
    >>> try:
    ...     parse_variant("oops")
    ... except typer.BadParameter as exc:
    ...     print(exc)
    variant 'oops': expected NAME=POLICY[@VERSION]:WEIGHT[:control|:shadow]
    """
    usage = f"variant {text!r}: expected NAME=POLICY[@VERSION]:WEIGHT[:control|:shadow]"
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not name or len(parts) not in (2, 3):
        raise typer.BadParameter(usage)
    policy, _, version = parts[0].partition("@")
    flag = parts[2] if len(parts) == 3 else ""
    if flag not in ("", "control", "shadow"):
        raise typer.BadParameter(usage)
    try:
        weight = float(parts[1])
        ver = int(version) if version else 0
    except ValueError as exc:
        raise typer.BadParameter(usage) from exc
    return admin_pb2.Variant(
        name=name,
        policy=policy,
        policy_version=ver,
        weight=weight,
        control=flag == "control",
        shadow=flag == "shadow",
    )


async def _direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


@contextmanager
def _on_database(target: Target) -> Iterator[Callable[[str, Message], Any]]:
    with database_engine(target.settings()) as engine:
        rpcs = ExperimentRpcs(ExperimentManager(engine), _direct)
        handlers: dict[str, Callable[[Any, Any], Any]] = {
            "CreateExperiment": rpcs.create,
            "RampExperiment": rpcs.ramp,
            "SetExperimentState": rpcs.set_state,
            "PromoteVariant": rpcs.promote,
            "RollbackExperiment": rpcs.rollback,
            "GetExperimentStatus": rpcs.status,
            "ListExperiments": rpcs.list_experiments,
        }

        def call(method: str, request: Message) -> Any:
            if hasattr(request, "actor") and not request.actor:
                request.actor = "cli"
            return asyncio.run(handlers[method](request, None))

        yield call


def _call(target: Target, method: str, request: Message) -> Any:
    """The answer of ``method`` (an Admin RPC name) to ``request``, from the target."""
    if target.address is None:
        with _on_database(target) as call:
            return call(method, request)
    with admin_channel(
        target.address,
        admin_token=target.admin_token,
        tls_ca_file=target.tls_ca,
        tls_cert_file=target.tls_cert,
        tls_key_file=target.tls_key,
    ) as remote:
        return remote(method, request)


def _print(msg: Message, as_json: bool, fmt: Callable[[Any], str]) -> None:
    typer.echo(message_json(msg) if as_json else fmt(msg))


def _run(
    target: Target, method: str, request: Message, as_json: bool, fmt: Callable[[Any], str]
) -> None:
    run_command(lambda: _print(_call(target, method, request), as_json, fmt))


@experiments_app.command("create")
@with_target(server=True)
def create(
    name: Annotated[str, typer.Argument(help="Experiment name (unique).")],
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant", "-v", help="NAME=POLICY[@VERSION]:WEIGHT[:control|:shadow]; repeat."
        ),
    ],
    route: Annotated[str, typer.Option(help="Route the experiment runs on.")] = "default",
    tenant: Annotated[str, typer.Option(help="Tenant of the route ('' = shared).")] = "",
    max_reward_drop: Annotated[
        float | None,
        typer.Option(
            help="Guardrail: stop a variant whose mean reward is below control's by more than "
            "this (absolute, on the reward scale) at --confidence. 0 turns the rule off. "
            f"Default: {DEFAULT_MAX_REWARD_DROP} when a variant is marked control, "
            "else off.",
            show_default=False,
        ),
    ] = None,
    max_cost_increase: Annotated[
        float,
        typer.Option(
            help="Guardrail: stop a variant whose mean cost exceeds control's by more than this "
            "fraction (0.2 = 20%) at --confidence. 0 (the default) turns the rule off."
        ),
    ] = 0.0,
    confidence: Annotated[float, typer.Option(help="Guardrail confidence level.")] = 0.95,
    min_samples: Annotated[int, typer.Option(help="Outcomes per side before guardrails.")] = 100,
    salt: Annotated[str, typer.Option(help="Bucketing salt (default: the name).")] = "",
    start: Annotated[bool, typer.Option("--start", help="Start running immediately.")] = False,
    actor: Actor = "",
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Create an experiment (draft unless --start)."""
    variants = [parse_variant(v) for v in variant]
    request = admin_pb2.CreateExperimentRequest(
        name=name,
        tenant=tenant,
        route=route,
        variants=variants,
        guardrail=admin_pb2.Guardrail(
            max_reward_drop=_reward_drop(max_reward_drop, variants),
            max_cost_increase=max_cost_increase,
            confidence=confidence,
            min_samples=min_samples,
        ),
        salt=salt,
        start=start,
        actor=actor,
    )
    _run(target, "CreateExperiment", request, as_json, format_experiment)


@experiments_app.command("ramp")
@with_target(server=True)
def ramp(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    weights: Annotated[list[str], typer.Argument(help="VARIANT=WEIGHT pairs, in percent.")],
    actor: Actor = "",
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Change variant weights; only units whose bucket changes owner move."""
    parsed: dict[str, float] = {}
    for item in weights:
        key, sep, value = item.partition("=")
        try:
            parsed[key] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: expected VARIANT=WEIGHT")
    request = admin_pb2.RampExperimentRequest(name=name, weights=parsed, actor=actor)
    _run(target, "RampExperiment", request, as_json, format_experiment)


def _set_state(
    target: Target, name: str, state: int, reason: str, actor: str, as_json: bool
) -> None:
    request = admin_pb2.SetExperimentStateRequest(
        name=name,
        state=state,  # type: ignore[arg-type]
        reason=reason,
        actor=actor,
    )
    _run(target, "SetExperimentState", request, as_json, format_experiment)


def _state_command(command: str, state: int, doc: str) -> None:
    """Register ``experiments <command> NAME``, which moves the experiment to ``state``."""

    def change(
        name: Annotated[str, typer.Argument(help="Experiment name.")],
        actor: Actor = "",
        as_json: AsJson = False,
        *,
        target: Target,
    ) -> None:
        _set_state(target, name, state, "", actor, as_json)

    change.__name__ = change.__qualname__ = command
    change.__doc__ = doc
    experiments_app.command(command)(with_target(server=True)(change))


_state_command(
    "start", admin_pb2.EXPERIMENT_STATE_RUNNING, "Start a draft experiment, or resume a paused one."
)
_state_command(
    "pause",
    admin_pb2.EXPERIMENT_STATE_PAUSED,
    "Pause: every unit is served by the route's own policy until resumed.",
)


@experiments_app.command("stop")
@with_target(server=True)
def stop(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    reason: Annotated[str, typer.Option(help="Why (audit log).")] = "",
    actor: Actor = "",
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Stop for good; the route keeps its own policy."""
    _set_state(target, name, admin_pb2.EXPERIMENT_STATE_STOPPED, reason, actor, as_json)


@experiments_app.command("promote")
@with_target(server=True)
def promote(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    variant: Annotated[str, typer.Argument(help="Variant whose policy the route adopts.")],
    actor: Actor = "",
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Make the variant's policy version the route's policy (warm) and stop."""
    request = admin_pb2.PromoteVariantRequest(name=name, variant=variant, actor=actor)
    _run(target, "PromoteVariant", request, as_json, format_experiment)


@experiments_app.command("rollback")
@with_target(server=True)
def rollback(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    reason: Annotated[str, typer.Option(help="Why (audit log).")] = "",
    actor: Actor = "",
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Stop and restore the route's policy from before the experiment."""
    request = admin_pb2.RollbackExperimentRequest(name=name, reason=reason, actor=actor)
    _run(target, "RollbackExperiment", request, as_json, format_experiment)


@experiments_app.command("status")
@with_target(server=True)
def status(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Per-variant statistics with always-valid intervals, and off-policy estimates."""
    _run(
        target,
        "GetExperimentStatus",
        admin_pb2.GetExperimentStatusRequest(name=name),
        as_json,
        format_status,
    )


@experiments_app.command("list")
@with_target(server=True)
def list_(
    route: Annotated[str, typer.Option(help="Only this route.")] = "",
    tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "",
    as_json: AsJson = False,
    *,
    target: Target,
) -> None:
    """Experiments, newest first."""
    _run(
        target,
        "ListExperiments",
        admin_pb2.ListExperimentsRequest(route=route, tenant=tenant),
        as_json,
        lambda m: "\n".join(format_experiment(e) for e in m.experiments) or "(none)",
    )
