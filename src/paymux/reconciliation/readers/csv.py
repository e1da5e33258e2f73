"""CSV (and other delimited text) registers, read line by line with the csv module."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path

from paymux.reconciliation.mapping import MappingConfig
from paymux.reconciliation.readers import FileFormatError, Row, Table, shape


@contextlib.contextmanager
def read_csv(path: Path, cfg: MappingConfig) -> Iterator[Table]:
    opts = cfg.csv
    with path.open("r", encoding=opts.encoding, newline="") as f:
        reader = csv.reader(f, delimiter=opts.delimiter, quotechar=opts.quotechar, strict=True)

        def rows() -> Iterator[Row]:
            try:
                for cells in reader:
                    yield reader.line_num, cells
            except UnicodeDecodeError as e:
                raise FileFormatError(
                    f"line {reader.line_num + 1}: the file is not {opts.encoding} text ({e.reason})"
                ) from None
            except csv.Error as e:
                raise FileFormatError(f"line {reader.line_num}: not valid CSV: {e}") from None

        yield shape(rows(), cfg, has_header=cfg.header)
