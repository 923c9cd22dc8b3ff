"""Server-rendered inline SVG charts: stacked columns and lines with markers and a band.

No JavaScript and nothing to download: the page carries its charts as markup, so it renders in
a browser with no internet access, with no bundler in the build, and costs the server a few
hundred string joins per chart. Each ``<svg>`` carries ``data-points`` (the number of finite
values drawn) so tests can check that a chart has data.

Examples
--------
>>> svg = stacked_columns(["a", "b"], {"m1": [0.5, 1.0], "m2": [0.5, 0.0]}, title="share")
>>> 'data-points="3"' in svg and svg.startswith("<figure>")
True
>>> svg = lines(["a", "b", "c"], {"reward": [0.2, None, 0.4]}, title="reward")
>>> 'data-points="2"' in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import TypeGuard

__all__ = ["PALETTE", "color_of", "lines", "stacked_columns"]

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

_W, _H = 760, 220
_L, _R, _T, _B = 56, 12, 12, 40  # margins: left (y labels), right, top, bottom (x labels)


def color_of(i: int) -> str:
    """The ``i``-th series colour."""
    return PALETTE[i % len(PALETTE)]


def _finite(v: float | None) -> TypeGuard[float]:
    return v is not None and math.isfinite(v)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.001:
        return f"{v:.3f}"
    return f"{v:.1e}"


def _frame(title: str, points: int, body: list[str], legend: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(n)}</span>' for n, c in legend
    )
    svg = (
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        f'data-points="{points}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )
    caption = f"<figcaption>{escape(title)}</figcaption>"
    return f'<figure>{caption}{svg}<div class="legend">{items}</div></figure>'


def _axes(labels: Sequence[str], lo: float, hi: float, fmt_y: str = "") -> list[str]:
    out = [
        f'<line x1="{_L}" y1="{_H - _B}" x2="{_W - _R}" y2="{_H - _B}" stroke="#888"/>',
        f'<line x1="{_L}" y1="{_T}" x2="{_L}" y2="{_H - _B}" stroke="#888"/>',
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = _y(v, lo, hi)
        text = f"{v:.0%}" if fmt_y == "%" else _fmt(v)
        out.append(
            f'<line x1="{_L}" y1="{y:.1f}" x2="{_W - _R}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{_L - 4}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    n = len(labels)
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        x = _x(i, n)
        out.append(
            f'<text x="{x:.1f}" y="{_H - _B + 16}" text-anchor="middle">{escape(labels[i])}</text>'
        )
    return out


def _x(i: float, n: int) -> float:
    width = _W - _L - _R
    return _L + width * (i + 0.5) / max(n, 1)


def _y(v: float, lo: float, hi: float) -> float:
    span = hi - lo or 1.0
    return _T + (_H - _T - _B) * (1 - (v - lo) / span)


def stacked_columns(
    labels: Sequence[str], series: Mapping[str, Sequence[float]], *, title: str
) -> str:
    """Columns stacked per bucket (shares in [0, 1]); one colour per series."""
    n = len(labels)
    body = _axes(labels, 0.0, 1.0, "%")
    width = (_W - _L - _R) / max(n, 1) * 0.8
    points = 0
    base = [0.0] * n
    legend = []
    for k, (name, values) in enumerate(series.items()):
        c = color_of(k)
        legend.append((name, c))
        for i, v in enumerate(values):
            if not _finite(v) or v <= 0:
                continue
            points += 1
            y_top, y_bot = _y(base[i] + v, 0, 1), _y(base[i], 0, 1)
            body.append(
                f'<rect x="{_x(i, n) - width / 2:.1f}" y="{y_top:.1f}" width="{width:.1f}" '
                f'height="{max(y_bot - y_top, 0.5):.1f}" fill="{c}">'
                f"<title>{escape(name)} {escape(labels[i])}: {v:.1%}</title></rect>"
            )
            base[i] += v
    return _frame(title, points, body, legend)


def lines(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    markers: Sequence[tuple[int, str]] = (),
    band: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
    zero_line: bool = False,
    from_zero: bool = False,
) -> str:
    """Lines (gaps where a value is missing), optional vertical ``markers`` ``(index, label)``
    and an optional shaded ``band`` ``(low, high)`` drawn under the first series;
    ``zero_line`` draws y = 0 dashed, ``from_zero`` starts the axis at 0 for non-negative
    values (costs)."""
    n = len(labels)
    values: list[float] = [v for s in series.values() for v in s if _finite(v)]
    if band is not None:
        values += [v for s in band for v in s if _finite(v)]
    if zero_line or (from_zero and values and min(values) >= 0):
        values.append(0.0)
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        half = abs(hi) * 0.5 or 0.5
        lo, hi = lo - half, hi + half
        if from_zero and lo < 0 <= hi - half:
            lo = 0.0
    pad = (hi - lo) * 0.05
    lo, hi = (lo - pad if lo != 0 else 0.0), hi + pad
    body = _axes(labels, lo, hi)
    if zero_line and lo < 0 < hi:
        y0 = _y(0.0, lo, hi)
        body.append(
            f'<line x1="{_L}" y1="{y0:.1f}" x2="{_W - _R}" y2="{y0:.1f}" stroke="#444" '
            'stroke-dasharray="4 3"/>'
        )
    if band is not None:
        low, high = band
        run: list[tuple[int, float, float]] = []
        for i in range(n + 1):
            lv = low[i] if i < min(len(low), n) else None
            hv = high[i] if i < min(len(high), n) else None
            if lv is not None and hv is not None and _finite(lv) and _finite(hv):
                run.append((i, lv, hv))
                continue
            if len(run) == 1:  # one bucket: an error bar
                j, b, h = run[0]
                x = _x(j, n)
                body.append(
                    f'<line x1="{x:.1f}" y1="{_y(b, lo, hi):.1f}" x2="{x:.1f}" '
                    f'y2="{_y(h, lo, hi):.1f}" stroke="{color_of(0)}" stroke-width="6" '
                    'opacity="0.3"/>'
                )
                run = []
            if run:
                top = " ".join(f"{_x(j, n):.1f},{_y(h, lo, hi):.1f}" for j, _, h in run)
                bot = " ".join(f"{_x(j, n):.1f},{_y(b, lo, hi):.1f}" for j, b, _ in run[::-1])
                body.append(f'<polygon points="{top} {bot}" fill="{color_of(0)}" opacity="0.18"/>')
                run = []
    grouped: dict[int, list[str]] = {}
    for i, text in markers:
        grouped.setdefault(i, []).append(text)
    for i, texts in sorted(grouped.items()):
        x = _x(i, n) - (_W - _L - _R) / max(n, 1) / 2
        right = x > _L + (_W - _L - _R) * 0.7
        label = escape(", ".join(texts))
        body.append(
            f'<line class="marker" x1="{x:.1f}" y1="{_T}" x2="{x:.1f}" y2="{_H - _B}" '
            f'stroke="#b00" stroke-dasharray="3 3"/>'
            f'<text x="{x - 3 if right else x + 3:.1f}" y="{_T + 10}" fill="#b00" '
            f'text-anchor="{"end" if right else "start"}">{label}</text>'
        )
    points = 0
    legend = []
    for k, (name, vals) in enumerate(series.items()):
        c = color_of(k)
        legend.append((name, c))
        segment: list[str] = []
        for i, v in [*enumerate(vals), (n, None)]:
            if v is not None and _finite(v):
                points += 1
                x, y = _x(i, n), _y(v, lo, hi)
                segment.append(f"{x:.1f},{y:.1f}")
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{c}">'
                    f"<title>{escape(name)} {escape(labels[i])}: {_fmt(v)}</title></circle>"
                )
                continue
            if len(segment) > 1:
                body.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" stroke="{c}" '
                    'stroke-width="2"/>'
                )
            segment = []
    return _frame(title, points, body, legend)
