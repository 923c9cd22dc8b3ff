"""``banditroute experiments ...``: manage experiments on a running server over the Admin API.

Every command takes ``--address`` (env ``BANDITROUTE_ADDRESS``, default ``127.0.0.1:50051``)
and ``--admin-token`` (env ``BANDITROUTE_ADMIN_TOKEN``). Variants are given as
``NAME=POLICY[@VERSION]:WEIGHT[:control|:shadow]``, e.g.::

    banditroute experiments create lin-vs-ts --route default \\
        --variant control=linucb:50:control --variant treatment=thompson:50 \\
        --max-reward-drop 0.05 --start
    banditroute experiments ramp lin-vs-ts control=80 treatment=20
    banditroute experiments status lin-vs-ts          # table; --json for JSON
    banditroute experiments promote lin-vs-ts treatment
    banditroute experiments rollback lin-vs-ts --reason "p95 regression"

Errors print ``error: <STATUS>: <message>`` and exit with code 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from banditroute.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["experiments_app", "format_experiment", "format_status", "parse_variant"]

experiments_app = typer.Typer(
    name="experiments",
    help="A/B experiments of policies on a route (create, ramp, status, promote, rollback).",
    no_args_is_help=True,
)

Address = Annotated[
    str,
    typer.Option("--address", envvar="BANDITROUTE_ADDRESS", help="Server host:port."),
]
Token = Annotated[
    str,
    typer.Option("--admin-token", envvar="BANDITROUTE_ADMIN_TOKEN", help="Admin bearer token."),
]
Actor = Annotated[str, typer.Option("--actor", help="Who makes the change (audit log).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_ADDRESS = "127.0.0.1:50051"
T = TypeVar("T", bound=Message)

_STATE = {
    admin_pb2.EXPERIMENT_STATE_DRAFT: "draft",
    admin_pb2.EXPERIMENT_STATE_RUNNING: "running",
    admin_pb2.EXPERIMENT_STATE_PAUSED: "paused",
    admin_pb2.EXPERIMENT_STATE_STOPPED: "stopped",
}


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


@contextmanager
def _admin(address: str, token: str) -> Iterator[Callable[[str, Message], Any]]:
    channel = grpc.insecure_channel(address)
    stub = admin_pb2_grpc.AdminStub(channel)
    metadata = [("authorization", f"Bearer {token}")] if token else []

    def call(method: str, request: Message) -> Any:
        try:
            return getattr(stub, method)(request, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            typer.echo(f"error: {code}: {details}", err=True)
            raise typer.Exit(code=1) from None

    try:
        yield call
    finally:
        channel.close()


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def _json(msg: Message) -> str:
    data = MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(_clean(data), indent=2, sort_keys=True)


def _num(x: float, fmt: str = ".3f") -> str:
    return "-" if not math.isfinite(x) else format(x, fmt)


def _est(e: admin_pb2.Estimate, fmt: str = ".3f") -> str:
    if e.n == 0 or not math.isfinite(e.value):
        return "-"
    if not (math.isfinite(e.ci_low) and math.isfinite(e.ci_high)):
        return format(e.value, fmt)
    return f"{e.value:{fmt}} [{e.ci_low:{fmt}}, {e.ci_high:{fmt}}]"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def format_experiment(exp: admin_pb2.Experiment) -> str:
    """One header line per experiment and its variants."""
    variants = ", ".join(
        f"{v.name}={v.policy}@{v.policy_version}:{v.weight:g}%"
        + (" (control)" if v.control else "")
        + (" (shadow)" if v.shadow else "")
        for v in exp.variants
    )
    reason = f"  [{exp.stop_reason}]" if exp.stop_reason else ""
    route = f"{exp.tenant}/{exp.route}" if exp.tenant else exp.route
    return f"{exp.name}  {_STATE.get(exp.state, '?')}  route={route}  {variants}{reason}"


def format_status(status: admin_pb2.ExperimentStatus) -> str:
    """A readable table of per-variant numbers (intervals are always-valid, see ``method``)."""
    exp = status.experiment
    conf = exp.guardrail.confidence or 0.95
    rows, offp = [], []
    for v in status.variants:
        role = "control" if v.control else "shadow" if v.shadow else "variant"
        weight = next((x.weight for x in exp.variants if x.name == v.variant), 0.0)
        state = "STOPPED" if v.stopped else "on"
        rows.append(
            [
                v.variant,
                role,
                f"{weight:g}%",
                state,
                str(v.decisions),
                str(v.outcomes),
                _est(v.reward),
                _est(v.quality),
                _est(v.cost_usd, ".5f"),
                f"{_num(v.latency_p50_ms, '.0f')}/{_num(v.latency_p95_ms, '.0f')}",
                _est(v.reward_diff_vs_control, "+.3f"),
                _num(v.p_value, ".3g") if v.reward_diff_vs_control.n else "-",
            ]
        )
        offp.append([v.variant, _est(v.ips), _est(v.snips), _est(v.dr), str(v.ips.n or "-")])
    lines = [format_experiment(exp), ""]
    lines.append(
        _table(
            [
                "variant",
                "role",
                "weight",
                "state",
                "decisions",
                "outcomes",
                f"reward [{conf:.0%} CI]",
                "quality",
                "cost $",
                "p50/p95 ms",
                "reward - control",
                "p-value",
            ],
            rows,
        )
    )
    lines += ["", "Off-policy value if 100% of traffic went to the variant:"]
    lines.append(_table(["variant", "IPS", "SNIPS", "DR", "n"], offp))
    for v in status.variants:
        if v.stopped:
            lines.append(f"\n{v.variant} stopped: {v.stop_reason}")
    lines += ["", f"Method: {status.method}"]
    return "\n".join(lines)


def _print(msg: Message, as_json: bool, fmt: Callable[[Any], str]) -> None:
    typer.echo(_json(msg) if as_json else fmt(msg))


@experiments_app.command("create")
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
        float, typer.Option(help="Stop a variant whose reward is this much below control.")
    ] = 0.0,
    max_cost_increase: Annotated[
        float, typer.Option(help="Stop a variant whose cost exceeds control by this fraction.")
    ] = 0.0,
    confidence: Annotated[float, typer.Option(help="Guardrail confidence level.")] = 0.95,
    min_samples: Annotated[int, typer.Option(help="Outcomes per side before guardrails.")] = 100,
    salt: Annotated[str, typer.Option(help="Bucketing salt (default: the name).")] = "",
    start: Annotated[bool, typer.Option("--start", help="Start running immediately.")] = False,
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create an experiment (draft unless --start)."""
    request = admin_pb2.CreateExperimentRequest(
        name=name,
        tenant=tenant,
        route=route,
        variants=[parse_variant(v) for v in variant],
        guardrail=admin_pb2.Guardrail(
            max_reward_drop=max_reward_drop,
            max_cost_increase=max_cost_increase,
            confidence=confidence,
            min_samples=min_samples,
        ),
        salt=salt,
        start=start,
        actor=actor,
    )
    with _admin(address, admin_token) as call:
        _print(call("CreateExperiment", request), as_json, format_experiment)


@experiments_app.command("ramp")
def ramp(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    weights: Annotated[list[str], typer.Argument(help="VARIANT=WEIGHT pairs, in percent.")],
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
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
    with _admin(address, admin_token) as call:
        _print(call("RampExperiment", request), as_json, format_experiment)


def _set_state(
    name: str, state: int, reason: str, actor: str, address: str, token: str, as_json: bool
) -> None:
    request = admin_pb2.SetExperimentStateRequest(
        name=name,
        state=state,  # type: ignore[arg-type]
        reason=reason,
        actor=actor,
    )
    with _admin(address, token) as call:
        _print(call("SetExperimentState", request), as_json, format_experiment)


@experiments_app.command("start")
def start_(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Start a draft experiment, or resume a paused one."""
    _set_state(name, admin_pb2.EXPERIMENT_STATE_RUNNING, "", actor, address, admin_token, as_json)


@experiments_app.command("pause")
def pause(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Pause: every unit is served by the route's own policy until resumed."""
    _set_state(name, admin_pb2.EXPERIMENT_STATE_PAUSED, "", actor, address, admin_token, as_json)


@experiments_app.command("stop")
def stop(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    reason: Annotated[str, typer.Option(help="Why (audit log).")] = "",
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Stop for good; the route keeps its own policy."""
    _set_state(
        name, admin_pb2.EXPERIMENT_STATE_STOPPED, reason, actor, address, admin_token, as_json
    )


@experiments_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    variant: Annotated[str, typer.Argument(help="Variant whose policy the route adopts.")],
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Make the variant's policy version the route's policy (warm) and stop."""
    request = admin_pb2.PromoteVariantRequest(name=name, variant=variant, actor=actor)
    with _admin(address, admin_token) as call:
        _print(call("PromoteVariant", request), as_json, format_experiment)


@experiments_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    reason: Annotated[str, typer.Option(help="Why (audit log).")] = "",
    actor: Actor = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Stop and restore the route's policy from before the experiment."""
    request = admin_pb2.RollbackExperimentRequest(name=name, reason=reason, actor=actor)
    with _admin(address, admin_token) as call:
        _print(call("RollbackExperiment", request), as_json, format_experiment)


@experiments_app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="Experiment name.")],
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Per-variant statistics with always-valid intervals, and off-policy estimates."""
    with _admin(address, admin_token) as call:
        msg = call("GetExperimentStatus", admin_pb2.GetExperimentStatusRequest(name=name))
        _print(msg, as_json, format_status)


@experiments_app.command("list")
def list_(
    route: Annotated[str, typer.Option(help="Only this route.")] = "",
    tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "",
    address: Address = DEFAULT_ADDRESS,
    admin_token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Experiments, newest first."""
    with _admin(address, admin_token) as call:
        msg = call("ListExperiments", admin_pb2.ListExperimentsRequest(route=route, tenant=tenant))
        _print(
            msg,
            as_json,
            lambda m: "\n".join(format_experiment(e) for e in m.experiments) or "(none)",
        )
