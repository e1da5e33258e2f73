"""CSV and free-form text registers (delimiter, header, encoding, line endings, a line pattern)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paymux.registers.columns import FIELDS, Money
from paymux.registers.formats import Layout, RegisterWriter, Totals
from paymux.registers.patterns import compile_line, render

QUOTING: dict[str, Any] = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "none": csv.QUOTE_NONE}


class CsvWriter(RegisterWriter):
    ext = "csv"
    content_type = "text/csv"

    def __init__(self, path: Path, layout: Layout) -> None:
        super().__init__(path, layout)
        opts = layout.cfg.csv
        self.eol = "\r\n" if opts.line_ending == "crlf" else "\n"
        self.file = path.open("w", encoding=opts.encoding, errors="replace", newline="")
        self.fields = [c.field for c in layout.columns]
        self.line = compile_line(opts.line_template, set(self.fields)) if opts.line_template else None
        if self.line is not None:
            self.content_type = "text/plain"
            if opts.header_template:
                self.file.write(
                    render(opts.header_template, layout.context, layout.text, layout.formatted) + self.eol
                )
            self.writer = None
        else:
            self.writer = csv.writer(
                self.file,
                delimiter=opts.delimiter,
                lineterminator=self.eol,
                quoting=QUOTING[opts.quoting],
                escapechar="\\" if opts.quoting == "none" else None,
            )
            if opts.header:
                self.writer.writerow(layout.titles())

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        cols = self.layout.columns
        text = self.layout.text
        if self.line is not None:
            line, spec, eol = self.line, self.layout.formatted, self.eol
            self.file.write(
                "".join(line(dict(zip(self.fields, r, strict=True)), text, spec) + eol for r in rows)
            )
            return
        assert self.writer is not None
        self.writer.writerows([text(v, c) for v, c in zip(r, cols, strict=True)] for r in rows)

    def finish(self, totals: Totals) -> None:
        layout = self.layout
        opts = layout.cfg.csv
        if self.line is not None:
            if opts.footer_template:
                self.file.write(
                    render(opts.footer_template, footer_values(layout, totals), layout.text, layout.formatted)
                    + self.eol
                )
        elif layout.cfg.totals and self.writer is not None:
            cols = layout.columns
            for row in layout.totals_rows(totals):
                self.writer.writerow([layout.text(v, c) for v, c in zip(row, cols, strict=True)])
        self.file.close()

    def abort(self) -> None:
        self.file.close()


def footer_values(layout: Layout, totals: Totals) -> dict[str, Any]:
    """Pattern values for a footer: the register's names, ``count`` and ``total_<money field>``."""
    values = dict(layout.context)
    values["count"] = totals.count
    currencies = sorted(totals.by_currency)
    for name, f in FIELDS.items():
        if f.kind != "money":
            continue
        if len(currencies) == 1:
            values[f"total_{name}"] = Money(totals.by_currency[currencies[0]].get(name, 0), currencies[0])
        else:
            values[f"total_{name}"] = "; ".join(
                f"{layout.text(Money(totals.by_currency[c].get(name, 0), c))} {c}" for c in currencies
            )
    return values
