"""Experiments as text: the tables ``banditroute experiments`` prints, and JSON with numbers.

Both work on the Admin API's messages (``Experiment``, ``ExperimentStatus``), whether they came
from a running server or from the database through the same handlers.
"""

from __future__ import annotations

import json
import math
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from banditroute.v1 import admin_pb2

__all__ = ["format_experiment", "format_status", "message_json"]

_STATE = {
    admin_pb2.EXPERIMENT_STATE_DRAFT: "draft",
    admin_pb2.EXPERIMENT_STATE_RUNNING: "running",
    admin_pb2.EXPERIMENT_STATE_PAUSED: "paused",
    admin_pb2.EXPERIMENT_STATE_STOPPED: "stopped",
}

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOATS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type in _INT64:
        return int(value)
    if field.type in _FLOATS and (isinstance(value, str) or not math.isfinite(value)):
        return None  # NaN and infinities ("no estimate yet") are not JSON numbers
    return value


def _numbers(data: dict[str, Any], descriptor: Any) -> dict[str, Any]:
    """Undo the proto3 JSON mapping's int64-as-string and non-finite-as-string rules."""
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            continue
        kind = field.message_type
        if kind is None:
            data[key] = (
                [_scalar(field, v) for v in value]
                if isinstance(value, list)
                else _scalar(field, value)
            )
        elif kind.full_name.startswith("google.protobuf."):
            continue  # Timestamp and friends keep their JSON form
        elif kind.GetOptions().map_entry:
            inner = kind.fields_by_name["value"]
            for k, v in value.items():
                value[k] = (
                    _numbers(v, inner.message_type) if inner.message_type else _scalar(inner, v)
                )
        elif isinstance(value, list):
            for item in value:
                _numbers(item, kind)
        else:
            _numbers(value, kind)
    return data


def message_json(msg: Message) -> str:
    """``msg`` as indented JSON with proto field names; numbers stay numbers (int64 included),
    a missing estimate (NaN) is ``null``.

    Examples
    --------
    >>> json.loads(message_json(admin_pb2.Estimate(value=0.5, n=3)))
    {'ci_high': 0.0, 'ci_low': 0.0, 'n': 3, 'value': 0.5}
    """
    data = MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(_numbers(data, msg.DESCRIPTOR), indent=2, sort_keys=True)


def _num(x: float, fmt: str = ".3f") -> str:
    return "-" if not math.isfinite(x) else format(x, fmt)


def _est(e: admin_pb2.Estimate, fmt: str = ".3f") -> str:
    if e.n == 0 or not math.isfinite(e.value):
        return "-"
    if not (math.isfinite(e.ci_low) and math.isfinite(e.ci_high)):
        return format(e.value, fmt)
    return f"{e.value:{fmt}} [{e.ci_low:{fmt}}, {e.ci_high:{fmt}}]"


def _usd(x: float) -> str:
    """Money: 6 decimals (request costs are fractions of a cent), 2 from $1,000."""
    if not math.isfinite(x):
        return "-"
    return f"{x:,.2f}" if abs(x) >= 1000 else f"{x:.6f}"


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


def _budget_lines(status: admin_pb2.ExperimentStatus) -> list[str]:
    """The route's budget, which the variants share, and each served variant's spend against
    it (nothing when the route has no budget)."""
    per_request = (
        status.budget_per_request_usd if status.HasField("budget_per_request_usd") else None
    )
    amount = status.budget_usd if status.HasField("budget_usd") else None
    if per_request is None and amount is None:
        return []
    parts, headers = [], ["variant", "$/request"]
    if per_request is not None:
        parts.append(f"${per_request:g}/request")
        headers.append("x target")
    period = status.budget_period
    if amount is not None:
        since = status.period_start.ToDatetime().strftime("%Y-%m-%d %H:%M")
        parts.append(f"${amount:g}/{period} ({period} from {since} UTC)")
        headers += [f"this {period} $", "of budget"]

    def row(name: str, each: float, period_spend: float, share: float) -> list[str]:
        out = [name, _usd(each)]
        if per_request is not None:
            out.append(_num(each / per_request, ".2f"))
        if amount is not None:
            out += [_usd(period_spend), _num(share, ".1%")]
        return out

    served = [v for v in status.variants if not v.shadow]
    if not served:
        return []
    rows = [
        row(v.variant, v.spend_per_request_usd, v.period_spend_usd, v.budget_share)
        for v in served
    ]
    # Every served variant together: what the route's one controller holds to the target.
    outcomes = sum(v.outcomes for v in served)
    spend = sum(v.spend_usd for v in served)
    period_spend = sum(v.period_spend_usd for v in served)
    rows.append(
        row(
            "(all)",
            spend / outcomes if outcomes else math.nan,
            period_spend,
            period_spend / amount if amount else math.nan,
        )
    )
    exp = status.experiment
    route = f"{exp.tenant}/{exp.route}" if exp.tenant else exp.route
    head = (
        f"Budget of route {route}, shared by the variants (one controller prices all of "
        f"their decisions): {', '.join(parts)}"
    )
    return ["", head, _table(headers, rows)]


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
                _usd(v.spend_usd),
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
                "spend $",
                "p50/p95 ms",
                "reward - control",
                "p-value",
            ],
            rows,
        )
    )
    lines += _budget_lines(status)
    lines += ["", "Off-policy value if 100% of traffic went to the variant:"]
    lines.append(_table(["variant", "IPS", "SNIPS", "DR", "n"], offp))
    for v in status.variants:
        if v.stopped:
            lines.append(f"\n{v.variant} stopped: {v.stop_reason}")
    lines += ["", f"Method: {status.method}"]
    return "\n".join(lines)
