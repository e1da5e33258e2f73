"""Charts drawn on the server by pygal, as SVG inside the page (no script, nothing fetched from elsewhere).

Every chart gets every label of its period (the caller passes the whole period, with zeros where nothing
happened), one series per group, a legend, and a tooltip per value (an SVG ``<title>``: the series, the
label and the value, shown by the browser on hover). pygal's style sheet is served once from
``/backoffice/charts.css`` (the pages' CSP allows style sheets from the site only, not inline styles), and
its inline style and script are taken out of each chart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

CHART_CLASS = "pmx-chart"
MAX_COLORS = 32  # colours the style sheet defines (series beyond them repeat the palette)
LABEL_EVERY_UP_TO = 40  # up to this many x labels every one is shown; above, about 20 (all are written)

STYLE = Style(
    background="transparent",
    plot_background="#ffffff",
    foreground="#1d2330",
    foreground_strong="#1d2330",
    foreground_subtle="#6b7385",
    font_family='system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
    label_font_size=12,
    major_label_font_size=12,
    value_font_size=11,
    title_font_size=15,
    legend_font_size=13,
    tooltip_font_size=12,
    no_data_font_size=20,
    guide_stroke_color="#d9dde5",
    major_guide_stroke_color="#b8bfcc",
    opacity=".85",
    opacity_hover="1",
    transition="0ms",
    colors=(
        "#1f5fbf",
        "#c2571a",
        "#2e7d32",
        "#6a3d9a",
        "#b3261e",
        "#00838f",
        "#8d6e00",
        "#ad1457",
        "#455a64",
        "#5d8c00",
    ),
)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int | None]  # one per label; None: no value there (not zero)


Formatter = Callable[[int], str]


def _plain(v: int) -> str:
    return str(v)


def _strip_inline(root: Any) -> Any:
    """pygal's xml filter: take out what needs its script or inline styles (blocked by the CSP), its
    comments and its ids (several charts share a page)."""
    for parent in root.iter():
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else ""
            if (
                not tag
                or tag.rsplit("}", 1)[-1] in ("style", "script")
                or ("tooltip-overlay" in child.attrib.get("class", ""))
            ):
                parent.remove(child)
    for node in root.iter():
        node.attrib.pop("id", None)
        node.attrib.pop("style", None)
    return root


def _config(**overrides: Any) -> pygal.Config:
    config = pygal.Config()
    config.style = STYLE
    config.js = []  # pygal's tooltip script is fetched from elsewhere by default: none
    config.css = ["file://style.css", "file://graph.css"]
    config.classes = ["pygal-chart", CHART_CLASS]
    config.disable_xml_declaration = True
    config.width = 800
    config.height = 400
    config.legend_at_bottom = True
    config.legend_at_bottom_columns = 4
    config.truncate_legend = 30
    config.truncate_label = -1
    config.print_values = False
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def chart(
    kind: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    value: Formatter = _plain,
    y_title: str = "",
) -> Markup:
    """An SVG chart of ``series`` over ``labels``: ``kind`` is "line", "bar" or "stacked" (bars).

    Values are integers (minor units, counts, percents) formatted by ``value`` in the axis and the
    tooltips; every series has one value per label.
    """
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
    many = len(labels) > LABEL_EVERY_UP_TO
    config = _config(
        title=title,
        x_labels=list(labels),
        y_title=y_title or None,
        value_formatter=lambda v: "" if v is None else value(int(v)),
        x_label_rotation=45 if len(labels) > 8 else 0,
        x_labels_major_every=(len(labels) + 19) // 20 if many else None,
        classes=["pygal-chart", CHART_CLASS, *(["sparse-x"] if many else [])],
        show_dots=len(labels) <= 100,
        dots_size=2.5,
        y_labels=_ticks(series, stacked=kind == "stacked"),
    )
    graph: Any = {"line": pygal.Line, "bar": pygal.Bar, "stacked": pygal.StackedBar}[kind](config)
    graph.add_xml_filter(_strip_inline)
    for s in series:
        graph.add(
            s.name,
            [
                None if v is None else {"value": v, "tooltip": f"{s.name} · {label}: {value(v)}"}
                for label, v in zip(labels, s.values, strict=True)
            ],
        )
    svg = graph.render(is_unicode=True)
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', 1))


STEPS = sorted(d * 10**k for k in range(19) for d in (1, 2, 5))


def _ticks(series: Sequence[Series], *, stacked: bool, wanted: int = 5) -> list[int]:
    """Whole-number y axis marks, a round step apart, from 0 (or below the lowest value) to past the
    highest (of a stacked chart: the highest column): values are minor units or counts, so a mark
    between two of them would mean nothing."""
    columns = list(zip(*(s.values for s in series), strict=True)) if series else []
    if stacked:
        tops = [sum(v for v in c if v is not None and v > 0) for c in columns]
        bottoms = [sum(v for v in c if v is not None and v < 0) for c in columns]
    else:
        tops = bottoms = [v for c in columns for v in c if v is not None]
    top, bottom = max([0, *tops]), min([0, *bottoms])
    step = next(s for s in STEPS if s * wanted >= max(top - bottom, 1))
    first, last = (bottom // step) * step, -(-top // step) * step
    return list(range(first, max(last, first + step) + 1, step))


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def top_series(series: Sequence[Series], limit: int, other: str) -> list[Series]:
    """At most ``limit`` series: the largest (by their sum), the rest added up into one named ``other``."""
    if len(series) <= limit:
        return list(series)
    ranked = sorted(series, key=lambda s: -sum(abs(v or 0) for v in s.values))
    kept, rest = ranked[: limit - 1], ranked[limit - 1 :]
    summed = [sum(s.values[i] or 0 for s in rest) for i in range(len(rest[0].values))]
    order = {id(s): i for i, s in enumerate(series)}
    return [*sorted(kept, key=lambda s: order[id(s)]), Series(other, summed)]


@functools.cache
def stylesheet() -> str:
    """pygal's style sheet for our charts (``svg.pmx-chart``), taken from a chart pygal renders with it."""
    config = _config(x_labels=["a"])
    config.js = []
    graph = pygal.Bar(config)
    for i in range(MAX_COLORS):
        graph.add(str(i), [1])
    graph.setup()
    try:
        graph.svg.add_styles()
        prefix = graph.svg.id  # "#chart-<uuid> "
        css = "".join(node.text or "" for node in graph.svg.defs.iter("style"))
    finally:
        graph.teardown()
    return css.replace(prefix.strip(), f"svg.{CHART_CLASS}") + HOVER


# without pygal's script, a hovered bar or dot is marked by style alone; on a chart with many x labels
# only the major ones are shown (the others stay in the SVG, for tooltips and screen readers)
HOVER = (
    f"svg.{CHART_CLASS} .reactive:hover{{fill-opacity:1;stroke-width:3}}\n"
    f"svg.{CHART_CLASS}.sparse-x .axis.x text:not(.major){{display:none}}\n"
)
