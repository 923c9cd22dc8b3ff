"""Report writers: one JSON object, a Markdown table and PNG plots (matplotlib).

The JSON is the report dict of :func:`banditroute.service.replay.experiment.run_experiment` with
non-finite numbers written as ``null``. Plots: cost-quality (each policy's lambda sweep,
the single models, random, oracle and the single models' convex hull, i.e. RouterBench's
zero router), cumulative regret vs rounds (mean over seeds, +- one std), cumulative
regret against the best fixed model in hindsight (the learning curve), and each policy's
model shares over the pass (stacked, one panel per policy and start).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["markdown_table", "plot_cost_quality", "plot_regret", "plot_regret_vs_best_fixed",
           "plot_share_curves", "to_json", "write_report"]


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _clean(value.item())
    return value


def to_json(report: dict[str, Any], indent: int | None = None) -> str:
    """The report as one JSON object (NaN/inf -> null).

    Examples
    --------
    >>> to_json({"a": float("nan"), "b": [1.5]})
    '{"a": null, "b": [1.5]}'
    """
    return json.dumps(_clean(report), indent=indent, allow_nan=False)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(report: dict[str, Any]) -> str:
    """A Markdown summary: baselines, then one row per policy and start.

    Examples
    --------
    >>> rep = {"dataset": "toy", "split": "test", "n_prompts": 2, "seeds": [0],
    ...        "cost_weight": 1.0, "baselines": {"single_models": [
    ...        {"model": "m", "accuracy": 1.0, "cost_per_query": 0.5}],
    ...        "random": {"accuracy": 1.0, "cost_per_query": 0.5},
    ...        "oracle_accuracy": 1.0, "oracle_cost_per_query": 0.5,
    ...        "zero_router_aiq": 1.0}, "results": []}
    >>> print(markdown_table(rep).splitlines()[0])
    ### toy (test split, 2 prompts, seeds [0])
    """
    base = report["baselines"]
    two = "strong_model" in base
    lines = [
        f"### {report['dataset']} ({report['split']} split, {report['n_prompts']} prompts, "
        f"seeds {report['seeds']})",
        "",
    ]
    head = ["router", "start", "lambda", "accuracy", "cost/query ($)", "vs best single: acc",
            "cost"]
    head += ["APGR", "CPT(50%)", "CPT(80%)"] if two else ["AIQ"]
    head += ["late hull gap"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    best_acc = base.get("best_single_accuracy") or 0.0
    best_cost = base.get("best_single_cost_per_query") or 0.0

    def ratio(a: float, b: float) -> str:
        return f"{100 * a / b:.1f}%" if b else "-"

    for r in report["results"]:
        acc = f"{r['accuracy']:.4f} ± {r['accuracy_std']:.4f}"
        cost = f"{r['cost_per_query']:.6f} ± {r['cost_per_query_std']:.6f}"
        row = [r["policy"], r["start"], f"{r['cost_weight']:g}", acc, cost,
               ratio(r["accuracy"], best_acc),
               ratio(r["cost_per_query"], best_cost)]
        if two:
            row += [_fmt(r.get("apgr")), _fmt(r.get("cpt50")), _fmt(r.get("cpt80"))]
        else:
            row += [f"{_fmt(r.get('aiq'))} ± {_fmt(r.get('aiq_std'))}"]
        row += [f"{_fmt(r.get('late_hull_gap'))} ± {_fmt(r.get('late_hull_gap_std'))}"
                if r.get("late_hull_gap") is not None else "-"]
        lines.append("| " + " | ".join(row) + " |")
    extra = [""] * (4 if two else 2)
    for s in base["single_models"]:
        lines.append("| " + " | ".join([f"always {s['model']}", "-", "-", _fmt(s["accuracy"]),
                                         _fmt(s["cost_per_query"], 6),
                                         ratio(s["accuracy"], best_acc),
                                         ratio(s["cost_per_query"], best_cost), *extra]) + " |")
    rnd = base["random"]
    rnd_extra = ["0.5000", "0.5000", "0.8000", ""] if two else ["", ""]
    lines.append("| " + " | ".join(["random", "-", "-", _fmt(rnd["accuracy"]),
                                     _fmt(rnd["cost_per_query"], 6),
                                     ratio(rnd["accuracy"], best_acc),
                                     ratio(rnd["cost_per_query"], best_cost), *rnd_extra]) + " |")
    lines.append("| " + " | ".join(["oracle (cheapest correct)", "-", "-",
                                     _fmt(base["oracle_accuracy"]),
                                     _fmt(base["oracle_cost_per_query"], 6),
                                     ratio(base["oracle_accuracy"], best_acc),
                                     ratio(base["oracle_cost_per_query"], best_cost), *extra])
                 + " |")
    if not two:
        lines.append("")
        lines.append(f"Zero router (convex hull of single models) AIQ: "
                     f"{_fmt(base.get('zero_router_aiq'))}; cost-threshold sweep AIQ: "
                     f"{_fmt(base.get('cost_threshold_aiq'))}.")
    lines.append("")
    lines.append("Late hull gap: accuracy minus the single-model convex hull at the same cost, "
                 "over the second half of the pass (hull on those prompts), at the first "
                 "lambda; > 0 beats every mixture of single models.")
    return "\n".join(lines) + "\n"


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path, rect: tuple[float, ...] | None = None) -> Path:
    """Lay ``fig`` out (within ``rect``), write it to ``path`` as a 120 dpi PNG and close it."""
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mean_std_band(ax: Any, r: dict[str, Any], curve: dict[str, Any]) -> None:
    """One result's mean curve (solid: warm start, dotted: cold) and its +- one std band."""
    mean, std = curve["mean"], curve["std"]
    line = ax.plot(curve["rounds"], mean, label=f"{r['policy']} ({r['start']})",
                   linestyle="-" if r["start"] == "warm" else ":")
    ax.fill_between(curve["rounds"], [m - s for m, s in zip(mean, std, strict=True)],
                    [m + s for m, s in zip(mean, std, strict=True)],
                    color=line[0].get_color(), alpha=0.15)


def _save_round_plot(plt: Any, fig: Any, ax: Any, path: Path, ylabel: str, title: str) -> Path:
    """Label a curves-over-rounds plot, add its grid and legend, and :func:`_save` it."""
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_cost_quality(report: dict[str, Any], path: Path) -> Path:
    """Cost-quality plot: policy sweeps, single models, random, oracle, convex hull."""
    plt = _pyplot()
    base = report["baselines"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for s in base["single_models"]:
        ax.scatter(s["cost_per_query"], s["accuracy"], marker="o", color="grey", zorder=3)
        ax.annotate(s["model"].split("/")[-1], (s["cost_per_query"], s["accuracy"]),
                    fontsize=7, xytext=(3, 3), textcoords="offset points")
    hull = base.get("zero_router_hull") or []
    if hull:
        xs = [p[0] for p in hull] + [base["max_cost"]]
        ys = [p[1] for p in hull] + [hull[-1][1]]
        ax.plot(xs, ys, color="grey", linestyle="--", label="single-model convex hull")
    ax.scatter(base["random"]["cost_per_query"], base["random"]["accuracy"], marker="x",
               color="black", label="random", zorder=3)
    ax.scatter(base["oracle_cost_per_query"], base["oracle_accuracy"], marker="*", s=120,
               color="gold", edgecolor="black", label="oracle", zorder=3)
    for r in report["results"]:
        pts = sorted((p["cost_per_query"], p["accuracy"]) for p in r["sweep"])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".",
                linestyle="-" if r["start"] == "warm" else ":",
                label=f"{r['policy']} ({r['start']})")
    ax.set_xlabel("cost per query (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{report['dataset']} {report['split']}: cost vs quality "
                 f"(lambda sweep, mean of {len(report['seeds'])} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, path)


def plot_regret(report: dict[str, Any], path: Path) -> Path:
    """Cumulative regret vs rounds at the operating cost weight, mean +- std over seeds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in report["results"]:
        curve = r["regret_curve"]
        _mean_std_band(ax, r, curve)
    return _save_round_plot(plt, fig, ax, path, "cumulative regret (vs best reward per prompt)",
                            f"{report['dataset']} {report['split']}: cumulative regret at each "
                            "policy's operating cost weight")


def plot_regret_vs_best_fixed(report: dict[str, Any], path: Path) -> Path:
    """Learning curves: cumulative regret against the best fixed model in hindsight."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    best = None
    for r in report["results"]:
        curve = r.get("regret_vs_best_fixed_curve")
        if not curve:
            continue
        best = r.get("best_fixed_model", best)
        _mean_std_band(ax, r, curve)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    return _save_round_plot(plt, fig, ax, path,
                            f"cumulative regret vs always {best}" if best else
                            "cumulative regret vs best fixed model",
                            f"{report['dataset']} {report['split']}: regret against the best "
                            "fixed model in hindsight (operating cost weight)")


def plot_share_curves(report: dict[str, Any], path: Path) -> Path:
    """Stacked model shares over the pass, one panel per policy and start."""
    plt = _pyplot()
    results = [r for r in report["results"] if r.get("share_curve")]
    cols = min(2, max(len(results), 1))
    rows = max(1, math.ceil(len(results) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False,
                             sharey=True)
    models = list(report.get("models") or [])
    for m in (m for r in results for m in r["share_curve"]["shares"]):
        if m not in models:
            models.append(m)
    colors = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(models)}
    for ax, r in zip(axes.flat, results, strict=False):
        curve = r["share_curve"]
        names = [m for m in models if m in curve["shares"]]
        # window i covers rounds (rounds[i-1], rounds[i]]: a step drawn from round 0
        ax.stackplot([0, *curve["rounds"]],
                     [[curve["shares"][m][0], *curve["shares"][m]] for m in names],
                     labels=[m.split("/")[-1] for m in names],
                     colors=[colors[m] for m in names], step="pre")
        ax.set_title(f"{r['policy']} ({r['start']})", fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlabel("round")
    for ax in list(axes.flat)[len(results):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("share of decisions")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center",
                   ncol=min(len(labels), 6))
    fig.suptitle(f"{report['dataset']} {report['split']}: model shares over the pass "
                 "(mean over seeds, operating cost weight)", fontsize=10)
    return _save(plt, fig, path, rect=(0, 0.08, 1, 0.95))


def write_report(report: dict[str, Any], out_dir: Path, stem: str | None = None,
                 plots: bool = True) -> dict[str, str]:
    """Write ``<stem>.json``, ``<stem>.md`` and (with ``plots``) four PNGs into ``out_dir``.

    The PNGs: ``_cost_quality``, ``_regret``, ``_regret_vs_best_fixed`` and ``_shares``
    (the last two only when the results carry those curves, i.e. in-process replay).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"{report['dataset']}_{report['split']}"
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    paths["json"].write_text(to_json(report, indent=1) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_table(report), encoding="utf-8")
    if plots:
        paths["cost_quality"] = plot_cost_quality(report, out_dir / f"{stem}_cost_quality.png")
        paths["regret"] = plot_regret(report, out_dir / f"{stem}_regret.png")
        if any(r.get("regret_vs_best_fixed_curve") for r in report["results"]):
            paths["regret_vs_best_fixed"] = plot_regret_vs_best_fixed(
                report, out_dir / f"{stem}_regret_vs_best_fixed.png")
        if any(r.get("share_curve") for r in report["results"]):
            paths["shares"] = plot_share_curves(report, out_dir / f"{stem}_shares.png")
    return {k: str(v) for k, v in paths.items()}
