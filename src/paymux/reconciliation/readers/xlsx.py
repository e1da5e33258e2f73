"""Excel (xlsx) registers, read with openpyxl's read-only mode (rows stream from the zip)."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

from paymux.reconciliation.mapping import MappingConfig
from paymux.reconciliation.readers import FileFormatError, Row, Table, shape


@contextlib.contextmanager
def read_xlsx(path: Path, cfg: MappingConfig) -> Iterator[Table]:
    from openpyxl import load_workbook  # imported when needed: the server does not hold openpyxl idle
    from openpyxl.utils.exceptions import InvalidFileException

    # an open file, not the path: given a path, openpyxl refuses any name without an Excel extension
    # (uploads and fetched files are stored without one) and never looks at the content
    with path.open("rb") as f:
        try:
            wb = load_workbook(f, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
            raise FileFormatError(f"the file is not an Excel (xlsx) workbook: {e}") from None
        try:
            if cfg.xlsx.sheet:
                if cfg.xlsx.sheet not in wb.sheetnames:
                    raise FileFormatError(
                        f"the workbook has no sheet {cfg.xlsx.sheet!r} (sheets: {', '.join(wb.sheetnames)})"
                    )
                ws = wb[cfg.xlsx.sheet]
            else:
                ws = wb.worksheets[0]

            def rows() -> Iterator[Row]:
                try:
                    yield from enumerate(ws.iter_rows(values_only=True), start=1)
                except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as e:
                    raise FileFormatError(f"the workbook is damaged: {e}") from None

            yield shape(rows(), cfg, has_header=cfg.header)
        finally:
            wb.close()
