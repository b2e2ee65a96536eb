"""Inline SVG line charts (pure), so the HTML report opens without any network."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


def _frame(width: int, height: int, pad_l: int, pad_r: int, y1: float, sy: Callable[[float], float],
           percent: bool) -> list[str]:
    """The opening <svg> and five labelled horizontal grid lines from 0 to `y1`."""
    parts = [f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">']
    for i in range(5):
        yv = y1 * i / 4
        y = sy(yv)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - pad_r}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        label = f"{yv:.2%}" if percent else f"{yv:,.{1 if y1 < 20 else 0}f}"
        parts.append(f'<text x="{pad_l - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{label}</text>')
    return parts


def line_chart(series: dict[str, list[tuple[float, float]]], width: int = 760, height: int = 260,
               y_label: str = "") -> str:
    points = [p for s in series.values() for p in s]
    if not points:
        return '<svg class="chart" width="10" height="10"></svg>'
    pad_l, pad_r, pad_t, pad_b = 56, 16, 16, 36
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1
    y1 = max(ys) * 1.1 or 1.0
    if x1 == x0:
        x1 = x0 + 1

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * (width - pad_l - pad_r)

    def sy(y: float) -> float:
        return height - pad_b - (y / y1) * (height - pad_t - pad_b)

    parts = _frame(width, height, pad_l, pad_r, y1, sy, percent=False)
    parts.append(f'<text x="{pad_l}" y="{height - 8}" font-size="11">t = {x0:.0f} s</text>')
    parts.append(f'<text x="{width - pad_r}" y="{height - 8}" font-size="11" text-anchor="end">{x1:.0f} s</text>')
    parts.append(f'<text x="12" y="{pad_t + 8}" font-size="11">{escape(y_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        if pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(f'<polyline class="series" data-name="{escape(name)}" fill="none" stroke="{colour}" '
                         f'stroke-width="2" points="{path}"/>')
        parts.append(f'<text x="{pad_l + 10 + i * 110}" y="{pad_t + 4}" font-size="12" fill="{colour}">'
                     f'■ {escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


STATUS_COLOUR = {"warn": "#ea580c", "fail": "#dc2626"}
RUN_PALETTE = ("#2563eb", "#16a34a", "#9333ea", "#0891b2", "#4b5563")  # no red or orange: those mark runs


def run_chart(series: dict[str, list[tuple[int, float, str, str]]], x_labels: list[str], width: int = 760,
              height: int = 240, y_label: str = "", percent: bool = False) -> str:
    """One point per run (x = the run's position in time). Points are (x, value, status, tooltip);
    a run whose status is warn/fail gets a large orange/red marker with class `regressed`."""
    points = [p for s in series.values() for p in s]
    if not points:
        return '<svg class="chart" width="10" height="10"></svg>'
    pad_l, pad_r, pad_t, pad_b = 64, 16, 24, 36
    n = max(len(x_labels), 2)
    y1 = max(p[1] for p in points) * 1.15 or (0.01 if percent else 1.0)

    def sx(x: float) -> float:
        return pad_l + x / (n - 1) * (width - pad_l - pad_r)

    def sy(y: float) -> float:
        return height - pad_b - (y / y1) * (height - pad_t - pad_b)

    parts = _frame(width, height, pad_l, pad_r, y1, sy, percent)
    if x_labels:
        parts.append(f'<text x="{pad_l}" y="{height - 8}" font-size="11">{escape(x_labels[0])}</text>')
        parts.append(f'<text x="{width - pad_r}" y="{height - 8}" font-size="11" text-anchor="end">'
                     f'{escape(x_labels[-1])}</text>')
    parts.append(f'<text x="8" y="{pad_t - 8}" font-size="11">{escape(y_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = RUN_PALETTE[i % len(RUN_PALETTE)]
        if len(pts) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _s, _t in pts)
            parts.append(f'<polyline class="series" data-name="{escape(name)}" fill="none" stroke="{colour}" '
                         f'stroke-width="2" points="{path}"/>')
        for x, y, status, tip in pts:
            marked = status in STATUS_COLOUR
            fill = STATUS_COLOUR.get(status, colour)
            parts.append(f'<circle class="run {"regressed " if marked else ""}{escape(status)}" cx="{sx(x):.1f}" '
                         f'cy="{sy(y):.1f}" r="{6 if marked else 3}" fill="{fill}"><title>{escape(tip)}</title>'
                         f'</circle>')
        parts.append(f'<text x="{pad_l + 10 + i * 160}" y="{pad_t - 8}" font-size="12" fill="{colour}">'
                     f'■ {escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
