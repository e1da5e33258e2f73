"""Line charts as server-rendered SVG (no JavaScript): balance history, forecast against facts.

Only presentation attributes are used (no inline styles), so the back office's strict CSP allows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from paymux.money import format_amount

COLORS = ("#1f5fa8", "#c2571a", "#2e7d32", "#6a3d9a")


@dataclass(slots=True)
class Series:
    name: str
    values: list[int | None]  # minor units; None = no point


def line_chart(
    labels: list[str],
    series: list[Series],
    currency: str,
    *,
    width: int = 760,
    height: int = 260,
    zero_line: bool = True,
    title: str = "",
    amount: Callable[[int, str], str] = format_amount,
) -> Markup:
    """An SVG line chart of ``series`` over ``labels`` (x axis), amounts labelled in ``currency``
    by ``amount(minor, currency)`` (plain by default; the back office passes the viewer's locale)."""
    left, right, top, bottom = 90, 16, 24, 40
    w, h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    lo, hi = (min(values), max(values)) if values else (0, 1)
    if zero_line:
        lo, hi = min(lo, 0), max(hi, 0)
    if lo == hi:
        hi = lo + 1
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return left + w * i / (n - 1)

    def y(v: int) -> float:
        return top + h * (hi - v) / (hi - lo)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(title)}" class="chart">',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for v in sorted({lo, hi, *((0,) if lo < 0 < hi else ())}):
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#bbb" '
            f'stroke-dasharray="{"0" if v == 0 else "3 3"}"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#333">'
            f"{escape(amount(v, currency))}</text>"
        )
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{top + h + 16}" text-anchor="middle" font-size="11" fill="#333">'
            f"{escape(labels[i])}</text>"
        )
    for k, s in enumerate(series):
        color = COLORS[k % len(COLORS)]
        points = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values) if v is not None]
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        elif points:
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(points)}"/>'
            )
        parts.append(
            f'<rect x="{left + 10 + 150 * k}" y="{height - 14}" width="12" height="4" fill="{color}"/>'
            f'<text x="{left + 26 + 150 * k}" y="{height - 9}" font-size="11" fill="#333">'
            f"{escape(s.name)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
