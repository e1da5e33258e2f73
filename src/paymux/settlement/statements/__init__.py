"""Bank statement parsers: camt.053 / camt.054 (ISO 20022), MT940 (SWIFT) and 1CClientBankExchange, into
:class:`Line` records."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field


class StatementError(ValueError):
    """A statement file that cannot be read; the message says where."""


@dataclass(slots=True)
class Line:
    uid: str  # stable identity of the booked line: the same line in two files has the same uid
    direction: str  # "debit": money left our account; "credit": money came in
    amount: int
    currency: str
    booked_on: dt.date
    counterparty: str = ""
    counterparty_account: str = ""
    counterparty_bank: str = ""
    counterparty_inn: str = ""
    reference: str = ""
    purpose: str = ""
    creditor_reference: str = ""  # structured remittance (RmtInf/Strd/CdtrRefInf/Ref), e.g. an RF reference
    bank_reference: str = ""  # the bank's own reference of the entry (AcctSvcrRef, NtryRef, MT940 "//...")


@dataclass(slots=True)
class Parsed:
    format: str
    account: str
    lines: list[Line] = field(default_factory=list)


def uid(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"{prefix}:{digest}"


FORMATS = ("camt053", "camt054", "mt940", "1c")


def detect(data: bytes) -> str | None:
    """The format of a statement file by its first bytes: ``camt`` (an XML document), ``mt940``, ``1c``."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:64]
    if head.startswith(b"1CClientBankExchange"):
        return "1c"
    if head.startswith(b"<"):
        return "camt"
    if head.startswith((b"{1:", b":20:")) or b"\n:20:" in data[:512]:
        return "mt940"
    return None


def parse(data: bytes, fmt: str | None = None) -> Parsed:
    """Parse a statement of any format (``fmt``, or recognised by its first bytes). camt.053 and camt.054
    are both read by the ISO 20022 reader; a camt file of the other kind than ``fmt`` is refused."""
    from paymux.settlement.statements import camt053, mt940, onec

    if fmt is not None and fmt not in FORMATS:
        raise StatementError(f"unknown statement format {fmt!r}: one of {', '.join(FORMATS)}")
    kind = detect(data)
    if kind == "1c" and fmt in (None, "1c"):
        return onec.parse(data)
    if kind == "camt" and fmt in (None, "camt053", "camt054"):
        parsed = camt053.parse(data)
        if fmt is not None and parsed.format != fmt:
            raise StatementError(f"the file is a {parsed.format} document, not {fmt}")
        return parsed
    if kind == "mt940" and fmt in (None, "mt940"):
        return mt940.parse(data)
    if fmt is not None:
        raise StatementError(f"the file is not a {fmt} statement")
    raise StatementError("not a camt.053/camt.054 XML file, an MT940 file nor a 1CClientBankExchange file")
