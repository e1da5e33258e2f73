"""The column mapping of a provider's register (stored per provider) and reading one line with it.

A column is named by its header text (case-insensitive) or by its 1-based position (files without a
header). The transaction id is either ours (the payment id the provider got as its txn id) or the
provider's own txn id. Amounts are decimal (with the given separators) or in minor units.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from paymux.money import MoneyError, check_currency, exponent
from paymux.registers.patterns import PatternError, render
from paymux.registers.schemas import FtpDelivery, Retry, Schedule, SftpDelivery

ColumnRef = str | Annotated[int, Field(ge=1, le=1000)]
OurStatus = Literal["succeeded", "failed"]

# provider status words understood without a status_map (case-insensitive)
DEFAULT_STATUS_MAP: dict[str, OurStatus] = {
    **dict.fromkeys(("succeeded", "success", "ok", "paid", "done", "completed", "1", "true"), "succeeded"),
    **dict.fromkeys(
        ("failed", "error", "cancelled", "canceled", "rejected", "declined", "0", "false"), "failed"
    ),
}


class MappingError(ValueError):
    """The mapping does not fit the file (a column is missing) or a line cannot be read."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CsvRead(_Strict):
    delimiter: str = Field(default=";", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        import codecs

        try:
            return codecs.lookup(v).name
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None


class XlsxRead(_Strict):
    sheet: str | None = Field(default=None, description="sheet name; the first sheet when empty")


class DbfRead(_Strict):
    encoding: str | None = Field(
        default=None, description="code page; by default from the file's language driver (cp866 if none)"
    )


class PostDefaults(_Strict):
    """Where a payment the provider has and we do not is booked when it is posted."""

    channel: str | None = None
    service: str | None = None


FetchSource = Annotated[FtpDelivery | SftpDelivery, Field(discriminator="kind")]


class FetchConfig(_Strict):
    """Fetch the register by FTP/SFTP each day (the provider's timezone) and reconcile it."""

    source: FetchSource
    file_name: str = Field(
        default="{provider}_{date:%Y%m%d}.csv", description="pattern: provider, date, period, year, month"
    )
    schedule: Schedule = Field(default_factory=Schedule)
    retry: Retry = Field(default_factory=Retry)

    @field_validator("file_name")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            render(v, file_name_context("acme", dt.date(2026, 11, 21)))
        except PatternError as e:
            raise ValueError(str(e)) from None
        return v


def file_name_context(provider: str, day: dt.date) -> dict[str, Any]:
    return {
        "provider": provider,
        "date": day,
        "period": day.isoformat(),
        "year": day.year,
        "month": day.month,
        "day": day.day,
    }


class MappingConfig(_Strict):
    format: Literal["csv", "xlsx", "dbf"] = "csv"
    header: bool = Field(default=True, description="the first row (after skip_rows) names the columns")
    skip_rows: int = Field(default=0, ge=0, le=1000, description="rows before the header or data")
    skip_footer: int = Field(default=0, ge=0, le=1000, description="rows at the end that are not lines")
    id_column: ColumnRef
    id_kind: Literal["payment_id", "provider_txn_id"] = "payment_id"
    amount_column: ColumnRef
    amount_format: Literal["decimal", "minor"] = "decimal"
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", " ", ",", ".", "'"] = ""
    currency: str = "RUB"
    currency_column: ColumnRef | None = None
    date_column: ColumnRef | None = None
    date_formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y"],
        min_length=1,
    )
    status_column: ColumnRef | None = None
    status_map: dict[str, OurStatus] = Field(
        default_factory=dict, description="provider status -> succeeded|failed (adds to the usual words)"
    )
    account_column: ColumnRef | None = None
    csv: CsvRead = Field(default_factory=CsvRead)
    xlsx: XlsxRead = Field(default_factory=XlsxRead)
    dbf: DbfRead = Field(default_factory=DbfRead)
    post: PostDefaults = Field(default_factory=PostDefaults)
    fetch: FetchConfig | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        try:
            return check_currency(v)
        except MoneyError as e:
            raise ValueError(str(e)) from None

    @model_validator(mode="after")
    def _columns(self) -> MappingConfig:
        if not self.header and self.format != "dbf":
            named = [c for c in self.column_refs().values() if isinstance(c, str)]
            if named:
                raise ValueError(f"without a header, columns are given by position (1, 2, ...), not {named}")
        if self.thousands_separator and self.thousands_separator == self.decimal_separator:
            raise ValueError("the thousands separator cannot be the decimal separator")
        return self

    def column_refs(self) -> dict[str, ColumnRef]:
        refs = {
            "id": self.id_column,
            "amount": self.amount_column,
            "currency": self.currency_column,
            "date": self.date_column,
            "status": self.status_column,
            "account": self.account_column,
        }
        return {k: v for k, v in refs.items() if v is not None}


@dataclass(frozen=True, slots=True)
class ProviderLine:
    line_no: int
    ref: str
    amount: int
    currency: str
    status: str  # succeeded | failed
    at: dt.datetime | None
    account: str | None


class LineParser:
    """Turns the raw cells of a row into a :class:`ProviderLine` (or None for a row without an id)."""

    def __init__(self, cfg: MappingConfig, header: Sequence[Any] | None, tz: ZoneInfo) -> None:
        self.cfg = cfg
        self.tz = tz
        self.index = resolve_columns(cfg, header)
        self.status_map = {k.casefold(): v for k, v in DEFAULT_STATUS_MAP.items()}
        self.status_map.update({k.strip().casefold(): v for k, v in cfg.status_map.items()})

    def parse(self, line_no: int, cells: Sequence[Any]) -> ProviderLine | None:
        cfg, idx = self.cfg, self.index

        def cell(name: str) -> Any:
            i = idx.get(name)
            if i is None or i >= len(cells):
                return None
            v = cells[i]
            return v.strip() if isinstance(v, str) else v

        ref = _text(cell("id"))
        if not ref:
            return None  # blank lines, totals rows
        if cfg.id_kind == "payment_id" and not ref.isdigit():
            raise MappingError(f"line {line_no}: the transaction id {ref!r} is not one of our payment ids")
        if len(ref) > 100:
            raise MappingError(f"line {line_no}: the transaction id is longer than 100 characters")
        currency = cfg.currency
        if "currency" in idx:
            currency = (_text(cell("currency")) or cfg.currency).upper()
            try:
                check_currency(currency)
            except MoneyError as e:
                raise MappingError(f"line {line_no}: {e}") from None
        amount = self.amount(line_no, cell("amount"), currency)
        status = "succeeded"
        if "status" in idx:
            word = _text(cell("status"))
            found = self.status_map.get(word.casefold())
            if found is None:
                raise MappingError(
                    f"line {line_no}: status {word!r} is not known; add it to the mapping's status_map"
                )
            status = found
        at = self.moment(line_no, cell("date")) if "date" in idx else None
        account = (_text(cell("account")) or None) if "account" in idx else None
        if account is not None and len(account) > 64:
            raise MappingError(f"line {line_no}: the account is longer than 64 characters")
        return ProviderLine(line_no, ref, amount, currency, status, at, account)

    def amount(self, line_no: int, raw: Any, currency: str) -> int:
        cfg = self.cfg
        digits = exponent(currency)
        if raw is None or raw == "":
            raise MappingError(f"line {line_no}: the amount is empty")
        value: Decimal
        try:
            if isinstance(raw, bool):
                raise InvalidOperation
            if isinstance(raw, int):
                value = Decimal(raw)
            elif isinstance(raw, float):
                value = Decimal(repr(raw))  # the shortest decimal that reads back as this float
            elif isinstance(raw, Decimal):
                value = raw
            else:
                text = str(raw).replace("\u00a0", "").replace("\u202f", "")
                if cfg.thousands_separator:
                    text = text.replace(cfg.thousands_separator, "")
                text = text.replace(" ", "")
                if cfg.decimal_separator == ",":
                    text = text.replace(",", ".")
                if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
                    raise InvalidOperation
                value = Decimal(text)
        except InvalidOperation:
            raise MappingError(f"line {line_no}: the amount {raw!r} is not a number") from None
        minor = value if cfg.amount_format == "minor" else value.scaleb(digits)
        if minor != minor.to_integral_value():
            unit = "minor units" if cfg.amount_format == "minor" else f"{digits} decimals of {currency}"
            raise MappingError(f"line {line_no}: the amount {raw!r} has more precision than {unit}")
        if minor < 0:
            raise MappingError(f"line {line_no}: the amount {raw!r} is negative")
        return int(minor)

    def moment(self, line_no: int, raw: Any) -> dt.datetime | None:
        if raw is None or raw == "":
            return None
        if isinstance(raw, dt.datetime):
            local = raw
        elif isinstance(raw, dt.date):
            local = dt.datetime.combine(raw, dt.time(0))
        else:
            text = str(raw).strip()
            for fmt in self.cfg.date_formats:
                try:
                    local = dt.datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
            else:
                raise MappingError(
                    f"line {line_no}: the date {text!r} matches none of {', '.join(self.cfg.date_formats)}"
                )
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.tz)
        return local.astimezone(dt.UTC)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # an id typed as a number in a spreadsheet
    if isinstance(v, Decimal) and v == v.to_integral_value():
        return str(int(v))
    return str(v).strip()


def resolve_columns(cfg: MappingConfig, header: Sequence[Any] | None) -> dict[str, int]:
    """Positions (0-based) of the mapped columns; raises MappingError naming a column not in the file."""
    names: dict[str, int] = {}
    if header is not None:
        for i, h in enumerate(header):
            key = _text(h).casefold()
            if key and key not in names:
                names[key] = i
    out: dict[str, int] = {}
    for what, ref in cfg.column_refs().items():
        if isinstance(ref, int):
            if header is not None and ref > len(header):
                raise MappingError(
                    f"the {what} column is number {ref}, but the file has {len(header)} columns"
                )
            out[what] = ref - 1
            continue
        if header is None:
            raise MappingError(f"the {what} column {ref!r} is named, but the file has no header row")
        pos = names.get(ref.strip().casefold())
        if pos is None:
            shown = ", ".join(_text(h) for h in header if _text(h))
            raise MappingError(f"the {what} column {ref!r} is not in the file (its columns: {shown})")
        out[what] = pos
    return out
