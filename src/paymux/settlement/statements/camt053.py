"""Reading ISO 20022 bank-to-customer statements, camt.053 (versions 001.02 onwards; namespace-agnostic),
and debit/credit notifications, camt.054 (``BkToCstmrDbtCdtNtfctn/Ntfctn``: the same entries, one
notification per booking or batch).

Only booked entries are taken. An entry with several transactions (a batch) gives one line per
transaction. A line's identity is the bank's own reference (``AcctSvcrRef``, else ``NtryRef``) with the
transaction's position, so the same entry in a daily and a monthly statement is the same line (and in a
camt.054 notification of it). The structured remittance (``RmtInf/Strd/CdtrRefInf/Ref``, e.g. an ISO
11649 RF reference) is kept as the line's ``creditor_reference``.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from paymux.money import MoneyError, parse_amount
from paymux.settlement.statements import Line, Parsed, StatementError, uid


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element | None, *path: str) -> ET.Element | None:
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if _local(c.tag) == name), None)
    return el


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if el is None else [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element | None, *path: str) -> str:
    found = _child(el, *path) if path else el
    return (found.text or "").strip() if found is not None else ""


def _account(el: ET.Element | None) -> str:
    ident = _child(el, "Id")
    return _text(ident, "IBAN") or _text(ident, "Othr", "Id")


def _party_name(el: ET.Element | None) -> str:
    # v02: Dbtr/Nm; v08+: Dbtr/Pty/Nm
    return _text(el, "Nm") or _text(el, "Pty", "Nm")


def _date(el: ET.Element | None) -> dt.date | None:
    raw = _text(el, "Dt") or _text(el, "DtTm")[:10]
    try:
        return dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _amount(el: ET.Element | None, where: str) -> tuple[int, str]:
    if el is None:
        raise StatementError(f"{where}: no amount")
    currency = el.get("Ccy", "")
    try:
        return parse_amount((el.text or "").strip(), currency), currency
    except MoneyError as e:
        raise StatementError(f"{where}: amount: {e}") from None


FEED = 64 * 1024  # bytes given to the XML parser at a time


def _tree(data: bytes) -> ET.Element:
    """The document's tree (entities and external references refused), fed to the parser a piece at a
    time: one call over a large file would keep the interpreter lock, and the event loop, meanwhile."""
    parser = SafeET.DefusedXMLParser(target=ET.TreeBuilder())
    for start in range(0, len(data), FEED):
        parser.feed(data[start : start + FEED])
    root: ET.Element = parser.close()
    return root


def _release(root: ET.Element) -> None:
    """Free the tree an element at a time (dropping the root frees them all in one call that keeps
    the interpreter lock for as long: 200 ms for 15 MB)."""
    stack = [root]
    while stack:
        element = stack.pop()
        stack.extend(element)
        element.clear()


def parse(data: bytes) -> Parsed:
    try:
        root = _tree(data)
    except (ET.ParseError, DefusedXmlException) as e:
        raise StatementError(f"not well-formed XML: {e}") from None
    try:
        return _statement(root)
    finally:
        _release(root)


def _statement(root: ET.Element) -> Parsed:
    body = _child(root, "BkToCstmrStmt")
    fmt, part = "camt053", "Stmt"
    if body is None:
        body = _child(root, "BkToCstmrDbtCdtNtfctn")
        fmt, part = "camt054", "Ntfctn"
    if _local(root.tag) != "Document" or body is None:
        raise StatementError(
            "not a camt.053 or camt.054 document (Document/BkToCstmrStmt or BkToCstmrDbtCdtNtfctn expected)"
        )
    statements = _children(body, part)
    if not statements:
        raise StatementError(f"the document has no {part}")
    out = Parsed(fmt, "")
    for s_no, stmt in enumerate(statements, start=1):
        account = _account(_child(stmt, "Acct"))
        out.account = out.account or account
        for n_no, ntry in enumerate(_children(stmt, "Ntry"), start=1):
            where = f"statement {s_no}, entry {n_no}"
            status = _text(ntry, "Sts") or _text(ntry, "Sts", "Cd")
            if status != "BOOK":
                continue
            indicator = _text(ntry, "CdtDbtInd")
            if indicator not in ("DBIT", "CRDT"):
                raise StatementError(f"{where}: CdtDbtInd must be DBIT or CRDT")
            direction = "debit" if indicator == "DBIT" else "credit"
            entry_amount, entry_currency = _amount(_child(ntry, "Amt"), where)
            booked = _date(_child(ntry, "BookgDt")) or _date(_child(ntry, "ValDt"))
            if booked is None:
                raise StatementError(f"{where}: no booking date")
            bank_ref = _text(ntry, "AcctSvcrRef") or _text(ntry, "NtryRef")
            txs: list[ET.Element | None] = [
                t for d in _children(ntry, "NtryDtls") for t in _children(d, "TxDtls")
            ] or [None]
            for t_no, tx in enumerate(txs, start=1):
                amount, currency = entry_amount, entry_currency
                tx_amt = _child(tx, "AmtDtls", "TxAmt", "Amt")
                if tx_amt is None:
                    tx_amt = _child(tx, "Amt")
                if tx is not None and len(txs) > 1:
                    amount, currency = _amount(tx_amt, f"{where}, transaction {t_no}")
                side = "Cdtr" if direction == "debit" else "Dbtr"
                parties = _child(tx, "RltdPties")
                agent = _child(tx, "RltdAgts", f"{side}Agt", "FinInstnId")
                e2e = _text(tx, "Refs", "EndToEndId")
                if e2e == "NOTPROVIDED":
                    e2e = ""
                remittance = _child(tx, "RmtInf")
                purpose = " ".join(_text(u) for u in _children(remittance, "Ustrd"))
                creditor_ref = next(
                    (r for s in _children(remittance, "Strd") if (r := _text(s, "CdtrRefInf", "Ref"))),
                    "",
                )
                identity = (
                    (account, bank_ref, t_no)
                    if bank_ref
                    else (account, booked, indicator, amount, currency, e2e, purpose, n_no, t_no)
                )
                out.lines.append(
                    Line(
                        uid=uid("camt", *identity),
                        direction=direction,
                        amount=amount,
                        currency=currency,
                        booked_on=booked,
                        counterparty=_party_name(_child(parties, side))[:200],
                        counterparty_account=_account(_child(parties, f"{side}Acct"))[:34],
                        counterparty_bank=(_text(agent, "BIC") or _text(agent, "BICFI"))[:11],
                        reference=(e2e or _text(tx, "Refs", "InstrId"))[:140],
                        purpose=purpose[:500],
                        creditor_reference=creditor_ref[:35],
                        bank_reference=(f"{bank_ref}/{t_no}" if len(txs) > 1 else bank_ref)[:140],
                    )
                )
    return out
