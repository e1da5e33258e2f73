"""Bank statement parsers: camt.053 (ISO 20022) and 1CClientBankExchange, into :class:`Line` records."""

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


@dataclass(slots=True)
class Parsed:
    format: str
    account: str
    lines: list[Line] = field(default_factory=list)


def uid(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"{prefix}:{digest}"


def parse(data: bytes) -> Parsed:
    """Parse a statement of either format (recognised by its first bytes)."""
    from paymux.settlement.statements import camt053, onec

    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:64]
    if head.startswith(b"1CClientBankExchange"):
        return onec.parse(data)
    if head.startswith(b"<"):
        return camt053.parse(data)
    raise StatementError("not a camt.053 XML file nor a 1CClientBankExchange file")
