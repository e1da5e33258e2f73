"""Excel registers through openpyxl's write-only mode (rows go to a temporary file, not memory).

The document timestamps and every zip entry's time are the register's fixed ``doc_time``, so
building the same register twice gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

from paymux.money import exponent
from paymux.registers.columns import Money, field_def
from paymux.registers.formats import Layout, RegisterWriter, Totals

ZIP64_LIMIT = (1 << 31) - 1


class _FixedTimeZip(ZipFile):
    """A zip whose entries all carry one timestamp (zip entry times are otherwise 'now' / file mtimes)."""

    def __init__(self, path: Path, when: dt.datetime) -> None:
        super().__init__(path, "w", ZIP_DEFLATED, allowZip64=True)
        self.when = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)

    def _info(self, name: str) -> ZipInfo:
        info = ZipInfo(name, date_time=self.when)
        info.compress_type = ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        return info

    def writestr(self, zinfo_or_arcname: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(zinfo_or_arcname, str):
            zinfo_or_arcname = self._info(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        info = self._info(str(arcname or os.path.basename(filename)))
        big = os.path.getsize(filename) > ZIP64_LIMIT
        with open(filename, "rb") as src, self.open(info, "w", force_zip64=big) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


class XlsxWriter(RegisterWriter):
    ext = "xlsx"
    content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def __init__(self, path: Path, layout: Layout) -> None:
        super().__init__(path, layout)
        self.wb = Workbook(write_only=True)
        self.ws = self.wb.create_sheet(layout.cfg.xlsx.sheet_name)
        self.kinds = layout.kinds()
        self.minor = layout.cfg.amount_format == "minor"
        self._formats: dict[str, str] = {}
        for i, c in enumerate(layout.columns, 1):
            width = max(c.width or field_def(c.field).width, len(c.title or "")) + 2
            self.ws.column_dimensions[get_column_letter(i)].width = min(width, 60)
        if layout.cfg.xlsx.header:
            bold = Font(bold=True)
            cells = []
            for title in layout.titles():
                cell = WriteOnlyCell(self.ws, value=title)
                cell.font = bold
                cells.append(cell)
            self.ws.append(cells)

    def _money_format(self, currency: str) -> str:
        fmt = self._formats.get(currency)
        if fmt is None:
            digits = exponent(currency)
            fmt = self._formats[currency] = "0." + "0" * digits if digits and not self.minor else "0"
        return fmt

    def _cells(self, row: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        ws = self.ws
        for v, kind in zip(row, self.kinds, strict=True):
            if isinstance(v, Money):
                cell = WriteOnlyCell(ws, value=v.minor if self.minor else v.decimal())
                cell.number_format = self._money_format(v.currency)
                out.append(cell)
            elif isinstance(v, dt.datetime):
                # whole seconds, as the text formats show them (Excel would round 59.9999 s up)
                cell = WriteOnlyCell(ws, value=v.replace(tzinfo=None, microsecond=0))
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
                out.append(cell)
            elif isinstance(v, dt.date):
                cell = WriteOnlyCell(ws, value=v)
                cell.number_format = "yyyy-mm-dd"
                out.append(cell)
            else:
                out.append(v if v is not None or kind != "str" else "")
        return out

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        append = self.ws.append
        for r in rows:
            append(self._cells(r))

    def finish(self, totals: Totals) -> None:
        if self.layout.cfg.totals:
            bold = Font(bold=True)
            for row in self.layout.totals_rows(totals):
                cells = self._cells(row)
                for i, c in enumerate(cells):
                    if not isinstance(c, Cell):
                        c = cells[i] = WriteOnlyCell(self.ws, value=c)
                    c.font = bold
                self.ws.append(cells)
        when = self.layout.doc_time.astimezone(dt.UTC).replace(tzinfo=None)
        props = self.wb.properties
        props.created = props.modified = when
        props.creator = "paymux"
        props.title = str(self.layout.context.get("file_name", ""))
        archive = _FixedTimeZip(self.path, when)
        ExcelWriter(self.wb, archive).save()

    def abort(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
