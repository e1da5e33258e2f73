"""Invoices from a file: a CSV or Excel (xlsx) sheet, its columns mapped to the invoice's fields, taken
by :func:`paymux.invoices.service.intake` (the same rules as the JSON intake: the number is the
idempotency key).

The first row (after ``skip_rows``) names the columns. A field is mapped to a column by its header text
(case-insensitive) or by its 1-based position; by default each field is read from the column named
like it (``number``, ``amount``, ``currency``, ``due_date``, ``payer_name``, ``payer_email``,
``payer_phone``, ``payer_language``, ``description``, ``reference``, ``partial_allowed``). Blank rows
are left out. The answer has one result per row (its row number in the file): ``created``,
``duplicate`` (the same invoice was sent before) or ``error`` with the message. A file that cannot be
read at all (not CSV in the encoding, not a workbook, a mapped column missing, no rows, too many) is
refused whole (:class:`UploadProblem`) and nothing is taken.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.errors import Problem
from paymux.invoices import service
from paymux.invoices.models import Biller
from paymux.invoices.schemas import MAX_BATCH

FIELDS = (
    "number",
    "amount",
    "currency",
    "due_date",
    "payer_name",
    "payer_email",
    "payer_phone",
    "payer_language",
    "description",
    "reference",
    "partial_allowed",
)
REQUIRED = ("number", "amount", "due_date")
MAX_FILE = 64 * 1024 * 1024
# what openpyxl raises on a damaged or foreign file (XML parse errors are SyntaxErrors)
BROKEN = (
    zipfile.BadZipFile,
    KeyError,
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    AttributeError,
    IndexError,
)
ColumnRef = str | Annotated[int, Field(ge=1, le=1000)]
TRUE = {"1", "true", "yes", "y", "da", "да"}
FALSE = {"", "0", "false", "no", "n", "nu", "нет"}


class UploadProblem(Problem):
    """The file cannot be read as the mapping says (422); nothing of it is taken."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-file", "Invalid file", detail)


class Mapping(BaseModel):
    """How to read the file (the ``mapping`` form field, JSON; every key optional)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "xlsx"] | None = Field(default=None, description="default: from the content")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    sheet: str | None = Field(default=None, max_length=100)
    skip_rows: int = Field(default=0, ge=0, le=1000)
    columns: dict[Literal[FIELDS], ColumnRef] = Field(default_factory=dict)  # type: ignore[valid-type]
    currency: str | None = Field(default=None, min_length=3, max_length=3, description="when no column")
    date_format: str = Field(default="%Y-%m-%d", max_length=20, description="strptime format")
    decimal_separator: Literal[".", ","] = "."

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            return codecs.lookup(v).name
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, v: str) -> str:
        if "%" not in v:
            raise ValueError("date_format is a strptime format such as %d.%m.%Y")
        return v


def parse_mapping(text: str | None) -> Mapping:
    if not text:
        return Mapping()
    try:
        raw = orjson.loads(text)
        return Mapping.model_validate(raw)
    except orjson.JSONDecodeError:
        raise UploadProblem("the mapping is not JSON") from None
    except ValidationError as e:
        detail = "; ".join(
            f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in e.errors(include_url=False, include_input=False)
        )
        raise UploadProblem(f"the mapping is not valid: {detail}"[:1000]) from None


def _rows_csv(data: bytes, m: Mapping) -> Iterator[list[Any]]:
    try:
        text = data.decode(m.encoding)
    except UnicodeDecodeError as e:
        raise UploadProblem(f"the file is not text in {m.encoding}: byte {e.start}") from None
    if "\x00" in text:
        raise UploadProblem("the file is not a CSV text (it has NUL characters)")
    text = text.removeprefix("\ufeff")
    try:
        yield from csv.reader(io.StringIO(text, newline=""), delimiter=m.delimiter, strict=True)
    except csv.Error as e:
        raise UploadProblem(f"the CSV file is malformed: {e}") from None


def _rows_xlsx(data: bytes, m: Mapping) -> Iterator[list[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (*BROKEN, InvalidFileException) as e:
        raise UploadProblem(f"the file is not an Excel (xlsx) workbook: {e}"[:500]) from None
    try:
        if m.sheet:
            if m.sheet not in wb.sheetnames:
                raise UploadProblem(
                    f"the workbook has no sheet {m.sheet!r} (sheets: {', '.join(wb.sheetnames)})"
                )
            ws = wb[m.sheet]
        else:
            ws = wb.worksheets[0]
        try:
            for row in ws.iter_rows(values_only=True):
                yield list(row)
        except BROKEN as e:
            raise UploadProblem(f"the workbook is damaged: {e}"[:500]) from None
    finally:
        wb.close()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f") if value == value else ""
    return str(value).strip()


def _date(value: Any, fmt: str) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = _text(value)
    try:
        return dt.datetime.strptime(text, fmt).date().isoformat()
    except ValueError:
        raise ValueError(f"due_date {text[:40]!r} is not a date in the format {fmt}") from None


def _amount(value: Any, sep: str) -> str:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return _text(value)
    text = _text(value).replace(" ", "").replace("\u00a0", "")
    if sep == ",":
        text = text.replace(".", "").replace(",", ".")
    try:
        Decimal(text)
    except InvalidOperation:
        raise ValueError(f"amount {text[:40]!r} is not a number") from None
    return text


def _bool(value: Any) -> bool:
    text = _text(value).lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"partial_allowed {text[:20]!r} is not yes or no")


def _item(cells: dict[str, Any], m: Mapping) -> dict[str, Any]:
    """The intake object of one row (ValueError: the row cannot be read)."""
    item: dict[str, Any] = {
        "number": _text(cells.get("number")),
        "amount": _amount(cells.get("amount"), m.decimal_separator),
        "currency": (_text(cells.get("currency")) or m.currency or "").upper(),
        "due_date": _date(cells.get("due_date"), m.date_format),
    }
    payer: dict[str, Any] = {}
    for name in ("name", "email", "phone", "language"):
        v = _text(cells.get(f"payer_{name}"))
        if v:
            payer[name] = v.lower() if name == "language" else v
    if payer:
        item["payer"] = payer
    for name in ("description", "reference"):
        v = _text(cells.get(name))
        if v:
            item[name] = v
    if "partial_allowed" in cells:
        item["partial_allowed"] = _bool(cells.get("partial_allowed"))
    return item


def _positions(header: list[Any], m: Mapping) -> dict[str, int]:
    names = {_text(h).lower(): i for i, h in reversed(list(enumerate(header))) if _text(h)}
    out: dict[str, int] = {}
    missing: list[str] = []
    for f in FIELDS:
        ref = m.columns.get(f)
        if isinstance(ref, int):
            if ref > len(header):
                missing.append(f"{f} (column {ref})")
            else:
                out[f] = ref - 1
        elif ref is not None:
            if ref.strip().lower() in names:
                out[f] = names[ref.strip().lower()]
            else:
                missing.append(f"{f} (column {ref!r})")
        elif f in names:
            out[f] = names[f]
        elif f in REQUIRED:
            missing.append(f"{f} (column {f!r})")
    if "currency" not in out and not m.currency:
        missing.append("currency (a column, or the mapping's currency)")
    if missing:
        found = ", ".join(repr(_text(h)) for h in header if _text(h))[:300]
        raise UploadProblem(f"the file has no column for {', '.join(missing)}; its header: {found}")
    return out


def read(
    data: bytes, filename: str, m: Mapping
) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, str]]]:
    """The rows of the file: (row number, intake object) for those read, (row number, message) for
    those that cannot be. Raises :class:`UploadProblem` for a file that cannot be read."""
    if not data:
        raise UploadProblem("the file is empty")
    if len(data) > MAX_FILE:
        raise UploadProblem(f"the file is larger than {MAX_FILE} bytes")
    kind = m.format or ("xlsx" if data[:2] == b"PK" or filename.lower().endswith(".xlsx") else "csv")
    rows = _rows_xlsx(data, m) if kind == "xlsx" else _rows_csv(data, m)
    good: list[tuple[int, dict[str, Any]]] = []
    bad: list[tuple[int, str]] = []
    header: list[Any] | None = None
    positions: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        if n <= m.skip_rows:
            continue
        if header is None:
            header = row
            positions = _positions(header, m)
            continue
        if all(_text(c) == "" for c in row):
            continue
        if len(good) + len(bad) >= MAX_BATCH:
            raise UploadProblem(f"a file has at most {MAX_BATCH} invoices")
        cells = {f: row[i] if i < len(row) else None for f, i in positions.items()}
        try:
            good.append((n, _item(cells, m)))
        except ValueError as e:
            bad.append((n, str(e)))
    if header is None:
        raise UploadProblem("the file has no header row")
    if not good and not bad:
        raise UploadProblem("the file has no invoices (only its header)")
    return good, bad


async def upload(
    session: AsyncSession, biller: Biller, data: bytes, filename: str, mapping: Mapping
) -> dict[str, Any]:
    """Take the file's invoices (never commits); the per-row answer."""
    good, bad = read(data, filename, mapping)
    results: list[dict[str, Any]] = [
        {"row": n, "number": None, "result": "error", "message": msg} for n, msg in bad
    ]
    taken = await service.intake(session, biller, [item for _, item in good])
    for r in taken:
        n, item = good[r.index]
        number = r.number or (item.get("number") or None)
        if r.status == 201:
            results.append({"row": n, "number": number, "result": "created", "message": ""})
        elif r.status == 200:
            results.append(
                {
                    "row": n,
                    "number": number,
                    "result": "duplicate",
                    "message": "the same invoice was taken before",
                }
            )
        else:
            detail = (r.problem or {}).get("detail") or (r.problem or {}).get("title") or "invalid"
            results.append({"row": n, "number": number, "result": "error", "message": str(detail)})
    results.sort(key=lambda x: x["row"])
    counts = {k: sum(1 for x in results if x["result"] == k) for k in ("created", "duplicate", "error")}
    return {"rows": len(results), **counts, "results": results}
