"""dBase III (.dbf) registers, written record by record (cp866 or cp1251 text).

Layout: a 32-byte header (version 0x03, last update date, record count, header and record lengths,
language driver id), 32 bytes per field, 0x0D, then fixed-width records each starting with a
deletion flag (space), and 0x1A at the end. The record count is patched in when the file closes.
Character fields are left-aligned and space-padded, numeric ones right-aligned, dates YYYYMMDD.
DBF has no place for a totals row: totals are recorded with the task, not written to the file.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paymux.money import exponent
from paymux.registers.columns import Money, field_def
from paymux.registers.formats import Layout, RegisterWriter, Totals
from paymux.registers.schemas import ColumnSpec

LANGUAGE_DRIVER = {"cp866": 0x65, "cp1251": 0xC9}
MONEY_DECIMALS = 2


class DbfError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DbfField:
    name: str
    type: str  # C N D
    width: int
    decimals: int = 0


def _name(base: str, taken: set[str]) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", base.upper())[:10] or "F"
    if not name[0].isalpha():
        name = ("F" + name)[:10]
    candidate, n = name, 1
    while candidate in taken:
        suffix = str(n)
        candidate, n = name[: 10 - len(suffix)] + suffix, n + 1
    taken.add(candidate)
    return candidate


def dbf_fields(layout: Layout) -> list[DbfField]:
    taken: set[str] = set()
    out: list[DbfField] = []
    minor = layout.cfg.amount_format == "minor"
    for c in layout.columns:
        f = field_def(c.field)
        name = c.name or _name(c.field.removeprefix("fields."), taken)
        taken.add(name)
        if f.kind == "money":
            decimals = 0 if minor else MONEY_DECIMALS
            out.append(DbfField(name, "N", min(c.width or f.width, 20), decimals))
        elif f.kind == "int":
            out.append(DbfField(name, "N", min(c.width or f.width, 20), 0))
        elif f.kind == "date":
            out.append(DbfField(name, "D", 8))
        elif f.kind == "datetime":
            sample = dt.datetime(2000, 12, 31, 23, 59, 59).strftime(c.format or layout.cfg.datetime_format)
            out.append(DbfField(name, "C", c.width or max(len(sample), 1)))
        else:
            out.append(DbfField(name, "C", c.width or f.width))
    return out


class DbfWriter(RegisterWriter):
    ext = "dbf"
    content_type = "application/x-dbase"

    def __init__(self, path: Path, layout: Layout) -> None:
        super().__init__(path, layout)
        self.encoding = layout.cfg.dbf.encoding
        self.fields = dbf_fields(layout)
        self.minor = layout.cfg.amount_format == "minor"
        self.count = 0
        self.record_len = 1 + sum(f.width for f in self.fields)
        if self.record_len > 65535:
            raise DbfError("the record is wider than dBase allows (65535 bytes)")
        self.file = path.open("wb")
        self.file.write(self._header())
        for f in self.fields:
            self.file.write(
                struct.pack(
                    "<11sc4xBB14x", f.name.encode("ascii"), f.type.encode("ascii"), f.width, f.decimals
                )
            )
        self.file.write(b"\r")

    def _header(self) -> bytes:
        d = self.layout.doc_time.date()
        header_len = 32 + 32 * len(self.fields) + 1
        return struct.pack(
            "<BBBBIHH17xB2x",
            0x03,
            d.year - 1900,
            d.month,
            d.day,
            self.count,
            header_len,
            self.record_len,
            LANGUAGE_DRIVER[self.encoding],
        )

    def _value(self, v: Any, f: DbfField, col: ColumnSpec) -> bytes:
        if f.type == "C":
            text = self.layout.text(v, col) if not isinstance(v, str) else v
            raw = text.encode(self.encoding, errors="replace")[: f.width]
            return raw.ljust(f.width, b" ")
        if f.type == "D":
            return v.strftime("%Y%m%d").encode("ascii") if isinstance(v, dt.date) else b" " * 8
        if v is None:
            return b" " * f.width
        if isinstance(v, Money):
            if self.minor:
                text = str(v.minor)
            else:
                digits = exponent(v.currency)
                if digits > f.decimals:
                    raise DbfError(
                        f"{v.currency} has {digits} decimals; the DBF field {f.name} has {f.decimals}"
                    )
                text = format(v.decimal(), f".{f.decimals}f")
        else:
            text = str(int(v))
        if len(text) > f.width:
            raise DbfError(f"{text} does not fit the DBF field {f.name} (width {f.width})")
        return text.rjust(f.width).encode("ascii")

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        spec = list(zip(self.fields, self.layout.columns, strict=True))
        value = self._value
        self.file.write(
            b"".join(b" " + b"".join(value(v, f, c) for v, (f, c) in zip(r, spec, strict=True)) for r in rows)
        )
        self.count += len(rows)

    def finish(self, totals: Totals) -> None:
        self.file.write(b"\x1a")
        self.file.seek(0)
        self.file.write(self._header())
        self.file.close()

    def abort(self) -> None:
        self.file.close()
