"""Reading 1CClientBankExchange files: our own exported orders, and bank statements in that format."""

from __future__ import annotations

import datetime as dt

from paymux.money import MoneyError, parse_amount
from paymux.settlement.statements import Line, Parsed, StatementError, uid

MAGIC = "1CClientBankExchange"


def decode(data: bytes) -> str:
    text = data.decode("cp1251", errors="strict") if data else ""
    if "Кодировка=DOS" in text[:2000]:
        text = data.decode("cp866")
    return text.lstrip("\ufeff")


def read(data: bytes) -> tuple[dict[str, str], list[dict[str, str]], list[dict[str, str]]]:
    """The header, the account sections (``СекцияРасчСчет``) and the documents, as key/value dicts."""
    try:
        text = decode(data)
    except UnicodeDecodeError as e:
        raise StatementError(f"not Windows-1251 text: {e}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    if not lines or lines[0] != MAGIC:
        raise StatementError(f"the first line must be {MAGIC}")
    header: dict[str, str] = {}
    accounts: list[dict[str, str]] = []
    documents: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    kind = ""
    for n, ln in enumerate(lines[1:], start=2):
        if not ln:
            continue
        key, eq, value = ln.partition("=")
        if key == "СекцияДокумент":
            current, kind = {"СекцияДокумент": value}, "doc"
        elif key == "СекцияРасчСчет":
            current, kind = {}, "acct"
        elif key == "КонецДокумента":
            if kind != "doc" or current is None:
                raise StatementError(f"line {n}: КонецДокумента without СекцияДокумент")
            documents.append(current)
            current = None
        elif key == "КонецРасчСчет":
            if kind != "acct" or current is None:
                raise StatementError(f"line {n}: КонецРасчСчет without СекцияРасчСчет")
            accounts.append(current)
            current = None
        elif key == "КонецФайла":
            if current is not None:
                raise StatementError(f"line {n}: the file ends inside a section")
            return header, accounts, documents
        elif not eq:
            raise StatementError(f"line {n}: expected Key=Value, got {ln[:40]!r}")
        elif current is not None:
            current[key] = value
        else:
            header[key] = value
    raise StatementError("no КонецФайла: the file is cut short")


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value.strip(), "%d.%m.%Y").date()
    except ValueError:
        return None


def parse(data: bytes) -> Parsed:
    header, accounts, documents = read(data)
    ours = {a.get("РасчСчет", "").strip() for a in accounts} | {header.get("РасчСчет", "").strip()}
    ours.discard("")
    if not ours:
        raise StatementError("no РасчСчет: the statement does not say whose account it is")
    out = Parsed("1c", sorted(ours)[0])
    for i, d in enumerate(documents, start=1):
        payer = d.get("ПлательщикСчет", "") or d.get("ПлательщикРасчСчет", "")
        payee = d.get("ПолучательСчет", "") or d.get("ПолучательРасчСчет", "")
        if payer in ours:
            direction, side = "debit", "Получатель"
        elif payee in ours:
            direction, side = "credit", "Плательщик"
        else:
            raise StatementError(f"document {i}: neither payer nor payee is the statement's account")
        try:
            amount = parse_amount(d.get("Сумма", "").strip().replace(",", "."), "RUB")
        except MoneyError as e:
            raise StatementError(f"document {i}: Сумма: {e}") from None
        booked = _date(d.get("ДатаСписано" if direction == "debit" else "ДатаПоступило", "")) or _date(
            d.get("Дата", "")
        )
        if booked is None:
            raise StatementError(f"document {i}: no valid date (dd.mm.yyyy)")
        account = d.get(f"{side}Счет", "") or d.get(f"{side}РасчСчет", "")
        out.lines.append(
            Line(
                uid=uid(
                    "1c", out.account, d.get("Номер", ""), d.get("Дата", ""), d.get("Сумма", ""), payer, payee
                ),
                direction=direction,
                amount=amount,
                currency="RUB",
                booked_on=booked,
                counterparty=(d.get(f"{side}1") or d.get(side, ""))[:200],
                counterparty_account=account[:34],
                counterparty_bank=d.get(f"{side}БИК", "")[:11],
                counterparty_inn=d.get(f"{side}ИНН", "")[:12],
                reference=d.get("Номер", "")[:140],
                purpose=d.get("НазначениеПлатежа", "")[:500],
            )
        )
    return out
