"""Reading SWIFT MT940 customer statements (the text of block 4, with or without the ``{1:...}`` headers).

Fields read: ``:20:`` (the statement's reference), ``:25:`` (the account), ``:28C:`` (statement and
sequence number), ``:60F:``/``:60M:`` (opening balance: its currency is the lines'), ``:61:`` (a
statement line), ``:86:`` (the information to the account owner of the line before it) and
``:62F:``/``:62M:`` (closing balance). Other fields are skipped. Reversals (``RC``, ``RD``) are read with
the direction of the money (a reversed credit is a debit).

A line's identity is the bank's reference (after ``//`` in ``:61:``) with the account, else the
account, statement number, the line's position, its date and amount: the same file read twice gives
the same lines. The payer's name is taken from the ``:86:`` text when it is tagged (``/NAME/...`` or
the German ``?32``/``?33`` subfields); the whole text is the line's purpose.
"""

from __future__ import annotations

import datetime as dt
import re

from paymux.money import MoneyError, exponent
from paymux.settlement.statements import Line, Parsed, StatementError, uid

MAX_LINES = 200_000
_FIELD = re.compile(r"^:([0-9]{2}[A-Z]?):", re.MULTILINE)
_LINE61 = re.compile(
    r"^(?P<value>[0-9]{6})(?P<entry>[0-9]{4})?(?P<mark>RC|RD|C|D)(?P<funds>[A-Z])?"
    r"(?P<amount>[0-9]{1,12},[0-9]{0,3})(?P<type>[NSF][A-Z0-9]{3})(?P<rest>.*)$"
)
_BALANCE = re.compile(
    r"^(?P<mark>[CD])(?P<date>[0-9]{6})(?P<ccy>[A-Z]{3})(?P<amount>[0-9]{1,12},[0-9]{0,3})$"
)
_NAME = re.compile(r"/(?:NAME|ORDP/?/?NAME)/([^/]+)")
_GERMAN = re.compile(r"\?([0-9]{2})([^?]*)")


def _date(raw: str, where: str) -> dt.date:
    yy, mm, dd = int(raw[:2]), int(raw[2:4]), int(raw[4:6])
    try:
        return dt.date(2000 + yy if yy < 80 else 1900 + yy, mm, dd)
    except ValueError:
        raise StatementError(f"{where}: bad date {raw!r}") from None


def _amount(raw: str, currency: str, where: str) -> int:
    whole, _, frac = raw.partition(",")
    try:
        digits = exponent(currency)
    except MoneyError as e:
        raise StatementError(f"{where}: {e}") from None
    frac = frac.rstrip("0")
    if len(frac) > digits:
        raise StatementError(f"{where}: amount {raw!r} has more decimals than {currency} takes")
    return int(whole) * 10**digits + int((frac or "0").ljust(digits, "0"))


def _fields(text: str) -> list[tuple[str, str]]:
    """``(tag, content)`` of each field of block 4, continuation lines kept (joined by new lines)."""
    marks = list(_FIELD.finditer(text))
    out: list[tuple[str, str]] = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        content = text[m.end() : end]
        content = re.sub(r"\n-\}?\s*$", "", content.rstrip())  # the block's end "-}" or "-"
        out.append((m.group(1), content.strip("\n").rstrip()))
    return out


def _payer(info: str) -> str:
    german = {k: v for k, v in _GERMAN.findall(info.replace("\n", ""))}
    if german:
        return (german.get("32", "") + german.get("33", "")).strip()
    m = _NAME.search(info.replace("\n", ""))
    return m.group(1).strip() if m else ""


def _purpose(info: str) -> str:
    flat = info.replace("\n", "")
    if _GERMAN.search(flat):
        # the remittance subfields ?20..?29 and ?60..?63 are the purpose
        parts = [v for k, v in _GERMAN.findall(flat) if "20" <= k <= "29" or "60" <= k <= "63"]
        return " ".join(p.strip() for p in parts if p.strip())
    return " ".join(info.split())


def parse(data: bytes) -> Parsed:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    fields = _fields(text)
    if not any(tag == "20" for tag, _ in fields):
        raise StatementError("not an MT940 statement (no :20: field)")
    out = Parsed("mt940", "")
    account, number, currency = "", "", ""
    last: Line | None = None
    position = 0
    for tag, content in fields:
        if tag == "20":
            account, number, currency, last = "", "", "", None
        elif tag == "25":
            account = content.strip()[:35]
            out.account = out.account or account
        elif tag == "28C":
            number = content.strip()[:11]
        elif tag in ("60F", "60M"):
            m = _BALANCE.match(content.strip())
            if m is None:
                raise StatementError(
                    f":{tag}: opening balance {content[:40]!r} is not C/D, date, currency, amount"
                )
            currency = m.group("ccy")
        elif tag in ("62F", "62M"):
            if _BALANCE.match(content.strip()) is None:
                raise StatementError(
                    f":{tag}: closing balance {content[:40]!r} is not C/D, date, currency, amount"
                )
            last = None
        elif tag == "61":
            position += 1
            where = f"statement {number or '?'}, line {position}"
            if not currency:
                raise StatementError(f"{where}: a :61: line before the opening balance (:60F:)")
            first, _, extra = content.partition("\n")
            m = _LINE61.match(first.strip())
            if m is None:
                raise StatementError(f"{where}: :61: {first[:60]!r} is not an MT940 statement line")
            value = _date(m.group("value"), where)
            booked = value
            if m.group("entry"):
                mm, dd = int(m.group("entry")[:2]), int(m.group("entry")[2:])
                year = value.year + (1 if mm < value.month - 6 else -1 if mm > value.month + 6 else 0)
                try:
                    booked = dt.date(year, mm, dd)
                except ValueError:
                    raise StatementError(f"{where}: bad entry date {m.group('entry')!r}") from None
            mark = m.group("mark")
            direction = "credit" if mark in ("C", "RD") else "debit"
            amount = _amount(m.group("amount"), currency, where)
            rest = m.group("rest")
            customer, _, bank = rest.partition("//")
            customer, bank = customer.strip()[:16], bank.strip()[:16]
            customer = "" if customer.upper() == "NONREF" else customer
            identity = (
                (account, bank)
                if bank and bank.upper() != "NONREF"
                else (account, number, position, value.isoformat(), mark, amount, customer)
            )
            last = Line(
                uid=uid("mt940", *identity),
                direction=direction,
                amount=amount,
                currency=currency,
                booked_on=booked,
                reference=customer,
                purpose=" ".join(extra.split())[:500],
                bank_reference=bank if bank.upper() != "NONREF" else "",
            )
            out.lines.append(last)
            if len(out.lines) > MAX_LINES:
                raise StatementError(f"more than {MAX_LINES} lines")
        elif tag == "86" and last is not None:
            last.counterparty = _payer(content)[:200]
            last.purpose = (" ".join(x for x in (last.purpose, _purpose(content)) if x))[:500]
    return out
