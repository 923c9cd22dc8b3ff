"""HTML of the dashboard pages: one self-contained document each, styles inline, charts as
inline SVG (:mod:`banditroute.service.dashboard.charts`), no scripts.

Every value from the database is escaped. Numbers carry ``data-*`` attributes (``data-route``,
``data-model``, ...) so tests can read them off the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import quote, urlencode

from banditroute.service.api.experiments import status_to_proto
from banditroute.service.dashboard import charts
from banditroute.service.dashboard.views import BudgetView, ExperimentPage, Overview, RoutePage
from banditroute.service.dashboard.windows import WINDOWS, Window
from banditroute.service.experiments.formatting import format_status

__all__ = ["error_page", "experiment_html", "login_html", "overview_html", "route_html"]

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#23395d;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px 24px;max-width:1200px}
h1{font-size:20px;margin:8px 0 4px}h2{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;background:#fff;margin:4px 0 12px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}
.windows a{margin-right:10px}.windows a.on{font-weight:700;text-decoration:none;color:#222}
.muted{color:#666}.bar{display:flex;width:220px;height:12px;border:1px solid #ccc}
.bar i{display:block;height:100%}
figure{margin:8px 0 16px;background:#fff;border:1px solid #ddd;padding:8px;display:inline-block}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart text{font-size:11px;fill:#444}
.legend{font-size:12px}.key{margin-right:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow-x:auto}
.guardrail td{background:#fff4f4}
form input{padding:4px}
"""


#: What a decision's ``pacing`` says, in the recent decisions' budget column.
_PACING = {"": "", "pacing": "paced", "cap": "capped"}


def _num(v: float | None, fmt: str = ".3f") -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return format(v, fmt)


def _page(title: str, body: str, *, nav: bool = True) -> str:
    links = '<a href="/">banditroute</a><span>read-only dashboard</span>' if nav else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)} · banditroute</title><style>{_CSS}</style></head>"
        f"<body><header>{links}</header><main>{body}</main></body></html>"
    )


def _windows(path: str, current: Window, extra: dict[str, str] | None = None) -> str:
    out = []
    for w in WINDOWS.values():
        query = urlencode({**(extra or {}), "window": w.name})
        cls = ' class="on"' if w.name == current.name else ""
        out.append(f'<a{cls} href="{escape(path)}?{escape(query)}">{escape(w.label)}</a>')
    return f'<p class="windows">Window: {"".join(out)}</p>'


def _table(headers: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def route_url(tenant: str, name: str, window: Window | None = None) -> str:
    """Path of a route's page."""
    query = {"tenant": tenant} if tenant else {}
    if window is not None:
        query["window"] = window.name
    qs = f"?{urlencode(query)}" if query else ""
    return f"/routes/{quote(name, safe='')}{qs}"


def experiment_url(name: str, window: Window | None = None) -> str:
    """Path of an experiment's page."""
    qs = f"?window={window.name}" if window is not None else ""
    return f"/experiments/{quote(name, safe='')}{qs}"


def _share_bar(by_model: dict[str, int], colors: dict[str, str]) -> str:
    total = sum(by_model.values())
    if not total:
        return '<span class="muted">no traffic</span>'
    parts = "".join(
        f'<i style="width:{100 * n / total:.2f}%;background:{colors[m]}" '
        f'title="{escape(m)} {n / total:.1%}"></i>'
        for m, n in sorted(by_model.items())
    )
    text = " · ".join(
        f'<span data-model="{escape(m)}" data-decisions="{n}">{escape(m)} {n / total:.1%}</span>'
        for m, n in sorted(by_model.items())
    )
    return f'<div class="bar">{parts}</div><small>{text}</small>'


def _budget_cell(view: BudgetView | None) -> str:
    """The overview's budget column: this period's spend against the budget, and the mean
    spend per request against its target."""
    if view is None:
        return '<span class="muted">none</span>'
    b, st = view.budget, view.status
    if st is None:
        return f'{escape(b.describe())} <span class="muted">(no state here yet)</span>'
    parts = []
    if b.budget_usd is not None:
        spend = st["period_spend_usd"]
        parts.append(
            f'<span data-field="budget_period_spend_usd">{_num(spend, ".4f")}</span> of '
            f"${b.budget_usd:g}/{escape(b.budget_period or '')} "
            f"({_num(spend / b.budget_usd, '.1%')})"
        )
    if b.budget_per_request_usd is not None:
        mean = st["mean_spend_per_request_usd"]
        ratio = None if mean is None else mean / b.budget_per_request_usd
        parts.append(
            f'<span data-field="budget_mean_spend_usd">{_num(mean, ".6f")}</span>/request, '
            f"{_num(ratio, '.2f')} x ${b.budget_per_request_usd:g}"
        )
    return "<br>".join(parts)


def _budget_line(p: RoutePage) -> dict[str, list[float | None]]:
    """The cost chart's reference line: the route's budget per request, if it has one."""
    per_request = p.budget.budget.budget_per_request_usd if p.budget is not None else None
    return {} if per_request is None else {"budget per request": [per_request] * len(p.labels)}


def _budget_section(view: BudgetView | None) -> str:
    """The route page's budget: every field of ``banditroute routes status``."""
    if view is None:
        return ""
    head = f"<h2>Budget</h2><p>{escape(view.budget.describe())} "
    if view.status is None:
        return head + (
            '<span class="muted">(this process has no controller state for it yet)</span></p>'
        )

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return _num(v, ".6g")
        return "-" if v is None else escape(str(v))

    rows = (
        f'<tr><td>{escape(k)}</td><td class="num" data-field="{escape(k)}">{value(v)}</td></tr>'
        for k, v in view.status.items()
    )
    return (
        head
        + '<span class="muted">(this process\'s controller, computed from the event log like '
        "every other process's: the fields of <code>banditroute routes status</code>; pace: the "
        "period's spend over what an even rate would have spent by now, 1 = on pace)</span></p>"
        + _table(["field", "value"], rows, "budget")
    )


def overview_html(o: Overview) -> str:
    """The overview page."""
    models = sorted({m for _, t in o.routes for m in t.by_model})
    colors = {m: charts.color_of(i) for i, m in enumerate(models)}
    rows = []
    for r, t in o.routes:
        link = route_url(r.tenant, r.name, o.window)
        rows.append(
            f'<tr data-route="{escape(r.name)}" data-tenant="{escape(r.tenant)}">'
            f"<td>{escape(r.tenant) or '<span class=muted>(default)</span>'}</td>"
            f'<td><a href="{escape(link)}">{escape(r.name)}</a></td>'
            f"<td>{escape(r.policy)}{f' v{r.policy_version}' if r.policy_version else ''}</td>"
            f'<td class="num" data-field="decisions">{t.sums.decisions}</td>'
            f'<td class="num" data-field="outcomes">{t.sums.outcomes}</td>'
            f'<td class="num" data-field="mean_reward">{_num(t.mean_reward, ".4f")}</td>'
            f'<td class="num" data-field="spend_usd">{_num(t.sums.cost_sum, ".4f")}</td>'
            f"<td>{_budget_cell(o.budgets.get((r.tenant, r.name)))}</td>"
            f"<td>{_share_bar(t.by_model, colors)}</td></tr>"
        )
    exp_rows = [
        f'<tr data-experiment="{escape(e.name)}"><td><a href="'
        f'{escape(experiment_url(e.name, o.window))}">{escape(e.name)}</a></td>'
        f"<td>{escape(e.route)}</td><td>{escape(e.state)}</td>"
        f"<td>{escape(', '.join(v.name for v in e.variants))}</td></tr>"
        for e in o.experiments
    ]
    body = (
        f"<h1>Routes</h1>{_windows('/', o.window)}"
        f'<p class="muted">{escape(o.window.label)} up to {o.now:%Y-%m-%d %H:%M:%S} UTC. '
        "Mean reward: of the outcomes recorded for the window's decisions; spend: their "
        "reported cost. Budget: this period's spend and the mean spend per request against "
        "the route's budget, from this process's controller.</p>"
        + _table(
            [
                "tenant",
                "route",
                "policy",
                "decisions",
                "outcomes",
                "mean reward",
                "spend (USD)",
                "budget (USD)",
                "model share",
            ],
            rows,
            "routes",
        )
        + "<h2>Experiments</h2>"
        + (
            _table(["experiment", "route", "state", "variants"], exp_rows, "experiments")
            if exp_rows
            else '<p class="muted">No experiments.</p>'
        )
    )
    return _page("Overview", body)


def route_html(p: RoutePage) -> str:
    """A route's page."""
    r = p.route
    extra = {"tenant": r.tenant} if r.tenant else {}
    markers = p.versions
    body = [
        f"<h1>Route {escape(r.name)}</h1>",
        f'<p class="muted">tenant {escape(r.tenant) or "(default)"} · policy '
        f"{escape(r.policy)} {f'v{r.policy_version}' if r.policy_version else '(latest)'} · "
        f"models {escape(', '.join(r.models)) or 'every enabled model'}</p>",
        _windows(route_url(r.tenant, r.name).split("?")[0], p.window, extra),
        charts.stacked_columns(p.labels, p.share, title="Model share of decisions"),
        charts.lines(
            p.labels,
            {"mean reward": p.mean_reward},
            title="Mean reward per bucket (dashed: policy version first seen)",
            markers=markers,
        ),
        charts.lines(
            p.labels,
            {"cost per request (USD)": p.cost_per_request, **_budget_line(p)},
            title="Cost per request (USD, reported by outcomes)",
            markers=markers,
            from_zero=True,
        ),
        _budget_section(p.budget),
        "<h2>Traffic in the window</h2>",
    ]
    total = sum(t.decisions for t in p.totals.values())
    body.append(
        _table(
            ["model", "decisions", "share", "outcomes", "mean reward", "cost/request", "latency"],
            (
                f'<tr data-model="{escape(m)}"><td>{escape(m)}</td>'
                f'<td class="num" data-field="decisions">{t.decisions}</td>'
                f'<td class="num">{_num(t.decisions / total if total else None, ".1%")}</td>'
                f'<td class="num" data-field="outcomes">{t.outcomes}</td>'
                f'<td class="num" data-field="mean_reward">'
                f"{_num(t.reward_sum / t.outcomes if t.outcomes else None, '.4f')}</td>"
                f'<td class="num">{_num(t.cost_sum / t.cost_n if t.cost_n else None, ".6f")}</td>'
                f'<td class="num">'
                f"{_num(t.latency_sum / t.latency_n if t.latency_n else None, '.0f')} ms</td></tr>"
                for m, t in p.totals.items()
            ),
            "totals",
        )
    )
    body.append("<h2>Learnt state</h2>")
    if not p.policies:
        body.append('<p class="muted">No policy state yet.</p>')
    for ps in p.policies:
        where = (
            "live policy in this process"
            if ps.source == "live"
            else "latest snapshot in the database"
        )
        body.append(
            f'<p><b>{escape(ps.policy)} v{ps.version}</b> <span class="muted">({where}, '
            f"events up to {ps.last_event_id}). Uncertainty: standard error of the mean reward, "
            "the model's reward standard deviation in this window over the square root of its "
            "updates.</span></p>"
        )
        body.append(
            _table(
                ["model", "updates", "mean reward", "± uncertainty", "active"],
                (
                    f'<tr data-policy="{escape(ps.policy)}" data-version="{ps.version}" '
                    f'data-model="{escape(a.model)}"><td>{escape(a.model)}</td>'
                    f'<td class="num" data-field="updates">{a.updates}</td>'
                    f'<td class="num" data-field="mean_reward">{_num(a.mean_reward, ".4f")}</td>'
                    f'<td class="num">{_num(a.uncertainty, ".4f")}</td>'
                    f"<td>{'yes' if a.active else 'no'}</td></tr>"
                    for a in ps.arms
                ),
                "arms",
            )
        )
    body.append("<h2>Recent decisions</h2>")
    body.append(
        _table(
            [
                "time (UTC)",
                "model",
                "propensity",
                "policy",
                "experiment",
                "reward",
                "cost (USD)",
                "latency (ms)",
                "budget",
            ],
            (
                f"<tr><td>{d.created_at:%Y-%m-%d %H:%M:%S}</td><td>{escape(d.model)}</td>"
                f'<td class="num">{_num(d.propensity, ".3f")}</td>'
                f"<td>{escape(d.policy)} v{d.policy_version}</td>"
                f"<td>{escape(d.experiment)}{'/' + escape(d.variant) if d.variant else ''}</td>"
                f'<td class="num">{_num(d.reward, ".4f")}</td>'
                f'<td class="num">{_num(d.cost_usd, ".6f")}</td>'
                f'<td class="num">{_num(d.latency_ms, ".0f")}</td>'
                f'<td data-field="pacing">{escape(_PACING.get(d.pacing, d.pacing))}</td></tr>'
                for d in p.recent
            ),
            "recent",
        )
    )
    return _page(f"Route {r.name}", "".join(body))


def _est(e: object) -> str:
    if e is None:
        return "-"
    value, low, high = (getattr(e, k, math.nan) for k in ("value", "ci_low", "ci_high"))
    n = getattr(e, "n", 0)
    if not n or not math.isfinite(value):
        return "-"
    return f"{value:.4f} [{_num(low, '.4f')}, {_num(high, '.4f')}] n={n}"


def experiment_html(p: ExperimentPage) -> str:
    """An experiment's page."""
    s = p.status
    e = s.experiment
    body = [
        f"<h1>Experiment {escape(e.name)}</h1>",
        f'<p class="muted">route <a href="{escape(route_url(e.tenant, e.route, p.window))}">'
        f"{escape(e.route)}</a> · state {escape(e.state)}"
        f"{' · ' + escape(e.stop_reason) if e.stop_reason else ''}</p>",
        _windows(experiment_url(e.name), p.window),
        "<h2>Status</h2>",
        f'<pre class="status">{escape(format_status(status_to_proto(s)))}</pre>',
        "<h2>Reward difference against control</h2>",
    ]
    if not p.diffs:
        body.append('<p class="muted">No control, or no served variant besides it.</p>')
    for d in p.diffs:
        body.append(
            charts.lines(
                p.labels,
                {f"{d.variant} - control": d.estimate},
                title=f"{d.variant} minus control: cumulative mean reward difference, "
                "shaded: always-valid interval",
                band=(d.low, d.high),
                zero_line=True,
            )
        )
    body.append("<h2>Off-policy estimates</h2>")
    body.append(
        _table(
            ["variant", "IPS", "SNIPS", "DR"],
            (
                f'<tr data-variant="{escape(v.variant.name)}"><td>{escape(v.variant.name)}</td>'
                f"<td>{_est(v.ips)}</td><td>{_est(v.snips)}</td><td>{_est(v.dr)}</td></tr>"
                for v in s.variants
            ),
            "ope",
        )
    )
    body.append("<h2>Guardrail and audit events</h2>")
    rows = []
    for ev in e.events:
        guard = ev.get("actor") == "guardrail" or "guardrail" in str(ev.get("action", ""))
        cls = ' class="guardrail"' if guard else ""
        rows.append(
            f"<tr{cls}><td>{ev.get('id')}</td><td>{escape(str(ev.get('at', '')))}</td>"
            f"<td>{escape(str(ev.get('action', '')))}</td>"
            f"<td>{escape(str(ev.get('actor', '')))}</td>"
            f"<td><code>{escape(json.dumps(ev.get('detail', {}), sort_keys=True))}</code></td>"
            "</tr>"
        )
    body.append(_table(["#", "at", "action", "actor", "detail"], rows, "events"))
    body.append(f'<p class="muted">{escape(s.method)}</p>')
    return _page(f"Experiment {e.name}", "".join(body))


def login_html(message: str) -> str:
    """The page a browser without the admin token gets (status 401)."""
    body = (
        f"<h1>Sign in</h1><p>{escape(message)}</p>"
        '<form method="post" action="/login"><label>Admin token '
        '<input type="password" name="token" autocomplete="current-password"></label> '
        '<button type="submit">Open the dashboard</button></form>'
    )
    return _page("Sign in", body, nav=False)


def error_page(status: str, message: str) -> str:
    """A 4xx/5xx page: the status and a one-line reason, never a traceback."""
    body = f"<h1>{escape(status)}</h1><p>{escape(message)}</p><p><a href='/'>Overview</a></p>"
    return _page(status, body)
