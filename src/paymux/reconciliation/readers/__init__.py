"""Streaming readers of providers' registers: rows come one at a time, whatever the file's size.

``open_table(path, cfg)`` yields a :class:`Table`: the header row (None without one) and an iterator
of ``(line_no, cells)``. A file that cannot be read raises :class:`FileFormatError` with a message
for people (which line, what is wrong).
"""

from __future__ import annotations

import collections
import contextlib
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


@contextlib.contextmanager
def open_table(path: Path, cfg: MappingConfig) -> Iterator[Table]:
    if cfg.format == "csv":
        from paymux.reconciliation.readers.csv import read_csv as reader
    elif cfg.format == "xlsx":
        from paymux.reconciliation.readers.xlsx import read_xlsx as reader
    else:
        from paymux.reconciliation.readers.dbf import read_dbf as reader
    with reader(path, cfg) as table:
        yield table
