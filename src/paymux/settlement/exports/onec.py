"""1CClientBankExchange (the 1C:Enterprise <-> client-bank text format) with payment orders.

Windows-1251 text, CRLF lines of ``Key=Value``: a header, one ``СекцияРасчСчет`` for our account,
then one ``СекцияДокумент=Платежное поручение`` ... ``КонецДокумента`` per order, ``КонецФайла``.
Document numbers are the orders' ids (1C numbers are numeric); the purpose names the order number.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from paymux.errors import invalid
from paymux.money import format_amount
from paymux.settlement.models import PaymentOrder
from paymux.settlement.settings import SettlementSettings

ENCODING = "cp1251"
DOCUMENT = "Платежное поручение"


def _date(d: dt.date) -> str:
    return d.strftime("%d.%m.%Y")


def _value(v: Any) -> str:
    """One-line, 1251-encodable value (others replaced by '?')."""
    text = " ".join(str(v or "").split())
    return text.encode(ENCODING, errors="replace").decode(ENCODING)


def build(
    orders: list[PaymentOrder],
    settings: SettlementSettings,
    *,
    created_at: dt.datetime,
    sender: str = "paymux",
) -> bytes:
    """The file; ``created_at`` is local to the business timezone (its date is the documents' date)."""
    if not orders:
        raise ValueError("no orders to export")
    other = sorted({o.number for o in orders if o.currency != "RUB"})
    if other:
        raise invalid("not-rub", f"1CClientBankExchange carries roubles only; not in RUB: {', '.join(other)}")
    local = created_at  # in the business timezone: the dates and time the bank's client shows
    today = local.date()
    lines: list[tuple[str, Any]] = [
        ("ВерсияФормата", "1.03"),
        ("Кодировка", "Windows"),
        ("Отправитель", sender),
        ("Получатель", ""),
        ("ДатаСоздания", _date(today)),
        ("ВремяСоздания", local.strftime("%H:%M:%S")),
        ("ДатаНачала", _date(today)),
        ("ДатаКонца", _date(today)),
        ("РасчСчет", settings.debtor_account),
        ("Документ", DOCUMENT),
    ]
    payer = [
        ("ПлательщикСчет", settings.debtor_account),
        ("Плательщик", f"ИНН {settings.debtor_inn} {settings.debtor_name}".strip()),
        ("ПлательщикИНН", settings.debtor_inn),
        ("ПлательщикКПП", settings.debtor_kpp),
        ("Плательщик1", settings.debtor_name),
        ("ПлательщикРасчСчет", settings.debtor_account),
        ("ПлательщикБанк1", settings.debtor_bank_name),
        ("ПлательщикБИК", settings.debtor_bik),
        ("ПлательщикКорсчет", settings.debtor_corr_account),
    ]
    for o in orders:
        p: dict[str, Any] = o.payee or {}
        lines += [
            ("СекцияДокумент", DOCUMENT),
            ("Номер", str(o.id)),
            ("Дата", _date(today)),
            ("Сумма", format_amount(o.amount, o.currency)),
            *payer,
            ("ПолучательСчет", p.get("account", "")),
            ("Получатель", f"ИНН {p.get('inn', '')} {p.get('name', '')}".strip()),
            ("ПолучательИНН", p.get("inn", "")),
            ("ПолучательКПП", p.get("kpp", "")),
            ("Получатель1", p.get("name", "")),
            ("ПолучательРасчСчет", p.get("account", "")),
            ("ПолучательБанк1", p.get("bank_name", "")),
            ("ПолучательБИК", p.get("bik", "")),
            ("ПолучательКорсчет", p.get("corr_account", "")),
            ("ВидОплаты", "01"),
            ("Очередность", "5"),
            ("НазначениеПлатежа", o.purpose),
        ]
        lines.append(("КонецДокумента", None))
    text = "1CClientBankExchange\r\n"
    text += "".join(f"{k}\r\n" if v is None else f"{k}={_value(v)}\r\n" for k, v in lines)
    text += "КонецФайла\r\n"
    return text.encode(ENCODING)
