"""Streaming readers of providers' registers: rows come one at a time, whatever the file's size.

``open_table(path, cfg)`` yields a :class:`Table`: the header row (None without one) and an iterator
of ``(line_no, cells)``. A file that cannot be read raises :class:`FileFormatError` with a message
for people (which line, what is wrong).

The mapping's ``format`` decides how a file is read; its name (an upload's extension, or none) plays
no part. What the file's first bytes show it to be is checked against that format, so an Excel
workbook sent to a CSV mapping is refused with a message saying so, not read as broken text.
"""

from __future__ import annotations

import collections
import contextlib
import struct
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paymux.reconciliation.mapping import MappingConfig

Row = tuple[int, Sequence[Any]]


class FileFormatError(ValueError):
    """The file is not what the mapping says (not a CSV/xlsx/DBF, a broken line, a bad encoding)."""


@dataclass
class Table:
    header: Sequence[Any] | None
    rows: Iterator[Row]


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def shape(rows: Iterator[Row], cfg: MappingConfig, *, has_header: bool) -> Table:
    """Skip ``skip_rows``, take the header (if the format has one), drop blank rows and the footer."""
    for _ in range(cfg.skip_rows):
        if next(rows, None) is None:
            break
    header: Sequence[Any] | None = None
    if has_header:
        first = next(rows, None)
        while first is not None and _blank(first[1]):
            first = next(rows, None)
        if first is None:
            raise FileFormatError("the file is empty: no header row")
        header = first[1]
    body: Iterator[Row] = (r for r in rows if not _blank(r[1]))
    if cfg.skip_footer:
        body = _drop_last(body, cfg.skip_footer)
    return Table(header, body)


def _drop_last(rows: Iterator[Row], n: int) -> Iterator[Row]:
    window: collections.deque[Row] = collections.deque()
    for r in rows:
        window.append(r)
        if len(window) > n:
            yield window.popleft()


KINDS = {
    "csv": "CSV text",
    "xlsx": "an Excel (xlsx) workbook",
    "xls": "an old Excel 97-2003 (.xls) workbook",
    "dbf": "a dBase (DBF) table",
    "zip": "a zip archive that is not an Excel workbook",
    "xml": "an XML (or HTML) document",
}
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _dbf_header(head: bytes, size: int) -> bool:
    """A plausible dBase header: version, last update date, header and record lengths within the file."""
    if len(head) < 32:
        return False
    if head[0] & 0x07 not in (0x03, 0x04, 0x05) and head[0] not in (0x30, 0x31, 0x83, 0x8B):
        return False
    _year, month, day = head[1], head[2], head[3]
    header_len, record_len = struct.unpack("<HH", head[8:12])
    return 1 <= month <= 12 and 1 <= day <= 31 and 33 <= header_len <= size and record_len >= 1


def sniff(path: Path) -> str:
    """What the file's content is: ``xlsx``, ``xls``, ``dbf``, ``zip``, ``xml`` or ``csv`` (other text)."""
    with path.open("rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                return "xlsx" if "xl/workbook.xml" in z.namelist() else "zip"
        except (zipfile.BadZipFile, OSError):
            return "zip"
    if head.startswith(OLE2):
        return "xls"
    if _dbf_header(head, path.stat().st_size):
        return "dbf"
    if head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"<"):
        return "xml"
    return "csv"


def check_kind(path: Path, fmt: str) -> None:
    """Refuse a file whose content is plainly not the mapping's format, naming what it is."""
    kind = sniff(path)
    if kind == fmt or (fmt == "dbf" and kind == "csv"):
        return  # a DBF the check does not recognise gets the DBF reader's own message
    raise FileFormatError(
        f"the file is not {KINDS[fmt]}, as the provider's mapping says, but {KINDS[kind]}; "
        f"send the register as {fmt} or change the mapping's format"
    )


@contextlib.contextmanager
def open_table(path: Path, cfg: MappingConfig) -> Iterator[Table]:
    check_kind(path, cfg.format)
    if cfg.format == "csv":
        from paymux.reconciliation.readers.csv import read_csv as reader
    elif cfg.format == "xlsx":
        from paymux.reconciliation.readers.xlsx import read_xlsx as reader
    else:
        from paymux.reconciliation.readers.dbf import read_dbf as reader
    with reader(path, cfg) as table:
        yield table
