"""Register file writers. Each streams rows to a file: memory does not grow with the register."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from paymux.registers.columns import Money, field_def
from paymux.registers.schemas import ColumnSpec, TemplateConfig

# Python's format spec: [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>#)?(?P<zero>0)?"
    r"(?P<width>[0-9]+)?(?P<grouping>[,_])?(?P<precision>\.[0-9]+)?(?P<type>[a-zA-Z%])?",
    re.DOTALL,
)


@dataclass
class Totals:
    """Count of payments and sums of every money column, per currency (minor units)."""

    count: int = 0
    by_currency: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, values: Sequence[Any], money_idx: Sequence[tuple[int, str]]) -> None:
        self.count += 1
        for i, name in money_idx:
            m: Money = values[i]
            sums = self.by_currency.setdefault(m.currency, {})
            sums[name] = sums.get(name, 0) + m.minor

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "by_currency": {c: dict(s) for c, s in sorted(self.by_currency.items())}}


@dataclass(frozen=True)
class Layout:
    """What a writer needs: the columns, the template's options, names for patterns, a fixed doc time."""

    cfg: TemplateConfig
    context: dict[str, Any]
    doc_time: dt.datetime  # UTC; written as the document's timestamp so rebuilding gives the same bytes

    @property
    def columns(self) -> list[ColumnSpec]:
        return self.cfg.columns

    def kinds(self) -> list[str]:
        return [field_def(c.field).kind for c in self.columns]

    def titles(self) -> list[str]:
        return [c.title or field_def(c.field).title for c in self.columns]

    def money_columns(self) -> list[tuple[int, str]]:
        return [(i, c.field) for i, c in enumerate(self.columns) if field_def(c.field).kind == "money"]

    def totals_rows(self, totals: Totals) -> list[list[Any]]:
        """One totals row per currency: 'Total' in the first free column, the currency, the sums."""
        rows: list[list[Any]] = []
        money = dict(self.money_columns())
        for cur, sums in sorted(totals.by_currency.items()) or [("", {})]:
            row: list[Any] = [None] * len(self.columns)
            for i, c in enumerate(self.columns):
                if i in money:
                    row[i] = Money(sums.get(money[i], 0), cur) if cur else None
                elif c.field == "currency":
                    row[i] = cur or None
                elif c.field == "number":
                    row[i] = totals.count
            for i in range(len(row)):
                if row[i] is None:
                    row[i] = "Total"
                    break
            rows.append(row)
        return rows

    def text(self, value: Any, col: ColumnSpec | None = None) -> str:
        """A value as text formats show it."""
        cfg = self.cfg
        if value is None:
            return ""
        if isinstance(value, Money):
            if cfg.amount_format == "minor":
                return str(value.minor)
            s = format(value, "")
            return s.replace(".", cfg.csv.decimal_separator) if cfg.csv.decimal_separator != "." else s
        if isinstance(value, dt.datetime):
            return value.strftime((col.format if col and col.format else None) or cfg.datetime_format)
        if isinstance(value, dt.date):
            return value.strftime((col.format if col and col.format else None) or cfg.date_format)
        if isinstance(value, Decimal):
            return format(value, "f")
        return str(value)

    def formatted(self, value: Any, spec: str) -> str:
        """A value under a pattern's format spec (``{amount:>12}``): an amount in the template's
        ``amount_format`` (minor units or major) with its decimal separator, then aligned and padded."""
        if not spec:
            return self.text(value)
        if not isinstance(value, Money):
            return format(value, spec)
        m = _SPEC.fullmatch(spec)
        if m is None:
            raise ValueError(f"invalid format spec {spec!r}")
        number: int | Decimal = value.minor if self.cfg.amount_format == "minor" else value.decimal()
        core = format(
            number, "".join(m.group(k) or "" for k in ("sign", "z", "alt", "grouping", "precision", "type"))
        )
        if self.cfg.csv.decimal_separator == ",":
            core = core.translate(_COMMA)  # 1,234.50 -> 1.234,50
        fill, align, width = m.group("fill") or " ", m.group("align"), int(m.group("width") or 0)
        if m.group("zero") and not align:
            fill, align = "0", "="
        if align == "=":
            sign = core[:1] if core[:1] in "+- " else ""
            return sign + core[len(sign) :].rjust(width - len(sign), fill)
        return format(core, f"{fill}{align or '>'}{width or ''}")


_COMMA = str.maketrans({".": ",", ",": "."})


class RegisterWriter(ABC):
    ext: str = ""
    content_type: str = "application/octet-stream"

    def __init__(self, path: Path, layout: Layout) -> None:
        self.path = path
        self.layout = layout

    @abstractmethod
    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append payments (one typed value per column)."""

    @abstractmethod
    def finish(self, totals: Totals) -> None:
        """Write the totals (if the template wants them) and close the file."""

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Release resources after a failure."""


def writer_for(fmt: str, path: Path, layout: Layout) -> RegisterWriter:
    if fmt == "xlsx":
        from paymux.registers.formats.xlsx import XlsxWriter

        return XlsxWriter(path, layout)
    if fmt == "csv":
        from paymux.registers.formats.csv import CsvWriter

        return CsvWriter(path, layout)
    if fmt == "dbf":
        from paymux.registers.formats.dbf import DbfWriter

        return DbfWriter(path, layout)
    raise ValueError(f"unknown register format {fmt!r}")


def extension(fmt: str, cfg: TemplateConfig) -> str:
    if fmt == "csv":
        return "txt" if cfg.csv.line_template else "csv"
    return fmt
