"""Reading the back office's charts (pygal SVG inside the page) back for tests (no tests here)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Chart:
    title: str
    x_labels: list[str]
    legend: list[str]
    # series name -> [(x label, value as shown)]: every value drawn, with its tooltip's label
    series: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    tooltips: list[str] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [v for _, v in self.series[name]]


def _classes(node: ET.Element) -> list[str]:
    return node.attrib.get("class", "").split()


def _text(node: ET.Element) -> str:
    return "".join(node.itertext()).strip()


def charts(html: str) -> list[Chart]:
    """Every chart of a page, parsed as XML."""
    out = []
    for svg in re.findall(r"<svg[^>]*\bpmx-chart\b.*?</svg>", html, re.S):
        root = ET.fromstring(svg)
        title = root.find(f"{SVG}title")
        axis = next(g for g in root.iter(f"{SVG}g") if {"axis", "x"} <= set(_classes(g)))
        labels = [
            _text(t) for g in axis.iter(f"{SVG}g") if "guides" in _classes(g) for t in g.iter(f"{SVG}text")
        ]
        legend = [
            _text(t) for g in root.iter(f"{SVG}g") if "legend" in _classes(g) for t in g.iter(f"{SVG}text")
        ]
        chart = Chart(_text(title) if title is not None else "", labels, legend)
        for i, name in enumerate(legend):
            values: list[tuple[str, str]] = []
            for g in root.iter(f"{SVG}g"):
                if f"serie-{i}" not in _classes(g):
                    continue
                for node in g.iter():
                    descs = {
                        d.attrib.get("class", "").split()[0]: _text(d) for d in node.findall(f"{SVG}desc")
                    }
                    if "value" in descs:
                        values.append((descs.get("x_label", ""), descs["value"]))
                        tip = node.find(f"{SVG}title")
                        chart.tooltips.append(_text(tip) if tip is not None else "")
            chart.series[name] = values
        out.append(chart)
    return out


def no_outside_references(html: str) -> bool:
    """No script, and nothing the page would fetch from another site."""
    return "<script" not in html and not re.search(r'(?:href|src)="(?:https?:)?//', html)
