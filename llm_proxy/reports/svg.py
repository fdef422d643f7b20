"""Pure: small, dependency-free SVG charts (line, stacked bars, horizontal bars).

Inline SVG needs no script and no network, prints sharply and scales with the page
(``viewBox`` + ``width: 100%``). Every mark carries a ``<title>`` so hovering shows the exact
value in any browser without JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = ["PALETTE", "bar_chart", "hbar_chart", "line_chart", "nice_ticks"]

PALETTE = {
    "blue": "#2563eb", "orange": "#ea580c", "red": "#dc2626", "green": "#16a34a",
    "purple": "#7c3aed", "teal": "#0d9488", "gray": "#94a3b8", "amber": "#d97706",
}
_W, _H = 560, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 14, 30, 40
Fmt = Callable[[float], str]
Series = tuple[str, Sequence[float | None], str]  # label, values, colour


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 and ``count`` evenly spaced round numbers covering ``top``."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [step * i for i in range(count + 1) if step * (i - 1) < top] or [0.0, step]


def _frame(title: str, ticks: list[float], fmt: Fmt, x_labels: Sequence[str],
           xs: Sequence[float]) -> list[str]:
    plot_h = _H - _TOP - _BOTTOM
    top = ticks[-1]
    out = [(f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'),
           f'<text x="{_LEFT}" y="18" class="ct">{escape(title)}</text>']
    for t in ticks:
        y = _TOP + plot_h - (t / top) * plot_h
        out.append(f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   'class="grid"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="yl">{escape(fmt(t))}</text>')
    if x_labels:
        every = max(1, math.ceil(len(x_labels) / 7))
        for i in range(0, len(x_labels), every):
            out.append(f'<text x="{xs[i]:.1f}" y="{_H - _BOTTOM + 16}" class="xl">'
                       f'{escape(x_labels[i])}</text>')
    return out


def _legend(series: Sequence[Series]) -> list[str]:
    out = []
    x: float = _W - _RIGHT
    for label, _values, colour in reversed(series):
        width = 14 + 6.5 * len(label)
        x -= width + 10
        out.append(f'<rect x="{x:.1f}" y="9" width="10" height="10" rx="2" fill="{colour}"/>'
                   f'<text x="{x + 14:.1f}" y="18" class="lg">{escape(label)}</text>')
    return out


def _empty(title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><text x="{_LEFT}" y="18" class="ct">'
            f'{escape(title)}</text><text x="{_W / 2}" y="{_H / 2}" class="empty">'
            'no data in this period</text></svg>')


def line_chart(title: str, x_labels: Sequence[str], series: Sequence[Series], fmt: Fmt) -> str:
    """Lines over time (latency percentiles, error rate): one polyline and dots per series."""
    values = [v for _l, vs, _c in series for v in vs if v is not None]
    if not x_labels or not values:
        return _empty(title)
    ticks = nice_ticks(max(values))
    top = ticks[-1]
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = len(x_labels)
    xs = [_LEFT + (plot_w * (i + 0.5) / n) for i in range(n)]
    out = _frame(title, ticks, fmt, x_labels, xs)
    for label, vs, colour in series:
        points = [(xs[i], _TOP + plot_h - (v / top) * plot_h, v, i)
                  for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _v, _i in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       'stroke-width="2" stroke-linejoin="round"/>')
        radius = 2.6 if n <= 60 else 1.6
        for x, y, v, i in points:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}">'
                       f'<title>{escape(f"{label} {x_labels[i]}: {fmt(v)}")}</title></circle>')
    out += _legend(series)
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, x_labels: Sequence[str], series: Sequence[Series], fmt: Fmt) -> str:
    """Stacked vertical bars over time (requests: ok + errors; cost per day)."""
    n = len(x_labels)
    totals = [sum((vs[i] or 0) for _l, vs, _c in series) for i in range(n)]
    if not n or not any(totals):
        return _empty(title)
    ticks = nice_ticks(max(totals))
    top = ticks[-1]
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = plot_w / n
    bar = max(1.0, slot * 0.72)
    xs = [_LEFT + slot * (i + 0.5) for i in range(n)]
    out = _frame(title, ticks, fmt, x_labels, xs)
    for i in range(n):
        base: float = _TOP + plot_h
        for label, vs, colour in series:
            v = vs[i] or 0
            if v <= 0:
                continue
            h = v / top * plot_h
            base -= h
            out.append(f'<rect x="{xs[i] - bar / 2:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                       f'height="{h:.1f}" fill="{colour}"><title>'
                       f'{escape(f"{label} {x_labels[i]}: {fmt(v)}")}</title></rect>')
    if len(series) > 1:
        out += _legend(series)
    out.append("</svg>")
    return "".join(out)


def hbar_chart(title: str, items: Sequence[tuple[str, float]], fmt: Fmt,
               colour: str = PALETTE["blue"]) -> str:
    """Horizontal bars for the top categories (cost by model, errors by type)."""
    items = [(label, value) for label, value in items if value]
    if not items:
        return _empty(title)
    row_h = 22
    height = _TOP + row_h * len(items) + 10
    label_w = 190
    plot_w = _W - label_w - 90
    top = max(v for _l, v in items)
    out = [(f'<svg class="chart" viewBox="0 0 {_W} {height}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'),
           f'<text x="8" y="18" class="ct">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = _TOP + i * row_h
        w = max(1.0, value / top * plot_w)
        short = label if len(label) <= 30 else label[:29] + "…"
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" class="hl">{escape(short)}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 7}" rx="2" '
                   f'fill="{colour}"><title>{escape(f"{label}: {fmt(value)}")}</title></rect>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="hv">'
                   f'{escape(fmt(value))}</text>')
    out.append("</svg>")
    return "".join(out)
