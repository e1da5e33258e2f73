"""ISO 20022 customer credit transfer initiation, pain.001.001.03 (one payment block per currency).

Creditor and debtor accounts are given by IBAN when known, otherwise as a generic account number
(``Othr/Id``, e.g. a Russian 20-digit account); there is always one (see ``exports.checks``). Agents
by BIC, otherwise by a generic id (the BIK) or ``NOTPROVIDED`` (the debtor's bank of an IBAN). Each
order is one transaction whose ``EndToEndId`` is the order number, so the bank statement (camt.053)
carries it back for matching. Dates and times are the business timezone's.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from decimal import Decimal
from typing import Any

from paymux.money import format_amount, to_decimal
from paymux.settlement.models import PaymentOrder
from paymux.settlement.settings import SettlementSettings

NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
VERSION = "pain.001.001.03"
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$")
_BIC = re.compile(r"^[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?$")


def _clean(value: str | None) -> str:
    return re.sub(r"\s+", "", value or "").upper()


def _text(value: str, limit: int) -> str:
    """Printable text cut to the field's length (the XSD's Max35Text, Max140Text...)."""
    value = re.sub(r"\s+", " ", value).strip()
    return (value or "-")[:limit]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _account(parent: ET.Element, tag: str, iban: str | None, other: str | None) -> None:
    acct = _sub(_sub(parent, tag), "Id")
    if iban and _IBAN.match(_clean(iban)):
        _sub(acct, "IBAN", _clean(iban))
    else:
        ident = _clean(other) or _clean(iban)
        if not ident:  # refused before: see exports.checks
            raise ValueError(f"{tag}: no account")
        _sub(_sub(acct, "Othr"), "Id", _text(ident, 34))


def _agent(parent: ET.Element, tag: str, bic: str | None, other: str | None) -> None:
    fin = _sub(_sub(parent, tag), "FinInstnId")
    if bic and _BIC.match(_clean(bic)):
        _sub(fin, "BIC", _clean(bic))
    else:
        _sub(_sub(fin, "Othr"), "Id", _text(_clean(other) or "NOTPROVIDED", 35))


def _sum(orders: list[PaymentOrder]) -> str:
    total = sum((to_decimal(o.amount, o.currency) for o in orders), Decimal(0))
    return f"{total:f}"


def build(
    orders: list[PaymentOrder],
    settings: SettlementSettings,
    *,
    message_id: str,
    execution_date: dt.date,
    created_at: dt.datetime,
) -> bytes:
    """The pain.001 document (UTF-8 bytes) for ``orders``; ``created_at`` is aware (business time)."""
    if not orders:
        raise ValueError("no orders to export")
    root = ET.Element("Document", {"xmlns": NS})
    init = _sub(root, "CstmrCdtTrfInitn")
    hdr = _sub(init, "GrpHdr")
    _sub(hdr, "MsgId", _text(message_id, 35))
    _sub(hdr, "CreDtTm", created_at.replace(microsecond=0).isoformat())  # local time with its UTC offset
    _sub(hdr, "NbOfTxs", str(len(orders)))
    _sub(hdr, "CtrlSum", _sum(orders))
    _sub(_sub(hdr, "InitgPty"), "Nm", _text(settings.debtor_name, 140))
    by_currency: dict[str, list[PaymentOrder]] = defaultdict(list)
    for o in orders:
        by_currency[o.currency].append(o)
    for currency, group in sorted(by_currency.items()):
        pmt = _sub(init, "PmtInf")
        _sub(pmt, "PmtInfId", _text(f"{message_id}-{currency}", 35))
        _sub(pmt, "PmtMtd", "TRF")
        _sub(pmt, "NbOfTxs", str(len(group)))
        _sub(pmt, "CtrlSum", _sum(group))
        _sub(pmt, "ReqdExctnDt", execution_date.isoformat())
        _sub(_sub(pmt, "Dbtr"), "Nm", _text(settings.debtor_name, 140))
        _account(pmt, "DbtrAcct", settings.debtor_iban, settings.debtor_account)
        _agent(pmt, "DbtrAgt", settings.debtor_bic, settings.debtor_bik)
        for o in group:
            payee: dict[str, Any] = o.payee or {}
            tx = _sub(pmt, "CdtTrfTxInf")
            ids = _sub(tx, "PmtId")
            _sub(ids, "InstrId", _text(o.number, 35))
            _sub(ids, "EndToEndId", _text(o.number, 35))
            _sub(_sub(tx, "Amt"), "InstdAmt", format_amount(o.amount, o.currency), Ccy=o.currency)
            if payee.get("bic") or payee.get("bik"):
                _agent(tx, "CdtrAgt", payee.get("bic"), payee.get("bik"))
            _sub(_sub(tx, "Cdtr"), "Nm", _text(str(payee.get("name") or payee.get("provider") or ""), 140))
            _account(tx, "CdtrAcct", payee.get("iban"), payee.get("account"))
            _sub(_sub(tx, "RmtInf"), "Ustrd", _text(o.purpose, 140))
    ET.indent(root)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")).encode()
