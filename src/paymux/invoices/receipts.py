"""Invoices paid by bank transfer outside the platform: bank statement lines (camt.053, camt.054, MT940)
matched to invoices, and the queue of the lines nobody could match. Services never commit.

Each credit line of a statement becomes an :class:`InvoiceReceipt` (once: its ``uid`` is the line's
identity in the bank's statements) and is matched

1. by the invoice's RF reference: the structured one (``RmtInf/Strd/CdtrRefInf/Ref``), else one found
   in the remittance text (``Ustrd``, MT940 ``:86:``; printed with spaces or not);
2. else by the exact amount still due, the currency and the payer's name (one open invoice only).

A statement names its account (camt ``Acct/Id``, MT940 ``:25:``). The statement of a biller's
collection account (its ``account.iban`` or ``account.account_number``) is matched to that biller's
invoices only (several billers sharing the account: theirs); the statement of one of the hub's own
collection accounts (``PAYMUX_INVOICE_HUB_ACCOUNTS``) to every biller's; the statement of any other
account is refused (422 ``unknown-statement-account``, nothing stored). A person matching a waiting
line is held to the same billers.

A matched line is applied with ``record_payment`` (method ``transfer``, the bank's reference of the
entry as the method's reference: an entry is never applied twice, whatever file it comes in), so part
and over-payments and payments to closed invoices are handled as everywhere. An unmatched line waits
(``waiting``) until a person matches it to an invoice or ignores it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.invoices.models import OPEN_STATUSES, Biller, Invoice, InvoicePayment, InvoiceReceipt
from paymux.invoices.reference import rf_normal, rf_valid
from paymux.invoices.service import record_payment
from paymux.money import format_amount
from paymux.settlement.statements import Line, StatementError, parse

METHOD = "transfer"
_RF = re.compile(r"RF[0-9]{2}[0-9A-Z ]{1,60}", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str, limit: int) -> str:
    """Printable text (a bank's file may carry control characters) cut to ``limit``."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def references_in(text: str) -> list[str]:
    """The valid RF references in free text (``RF18 5390 0754 7034``, ``rf18539007547034``), in the
    order found; a reference followed by other words is found too."""
    found: list[str] = []
    for m in _RF.finditer(text):
        tokens = m.group(0).split()
        best = ""
        joined = ""
        for t in tokens:
            joined += t
            if len(joined) > 25:
                break
            if rf_valid(joined):
                best = joined
        if best and rf_normal(best) not in found:
            found.append(rf_normal(best))
    return found


def _name(value: str | None) -> str:
    return " ".join((value or "").casefold().split())


@dataclass
class ImportResult:
    format: str
    lines: int = 0
    credits: int = 0
    matched: int = 0
    unmatched: int = 0
    duplicates: int = 0
    receipts: list[int] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "lines": self.lines,
            "credits": self.credits,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "duplicates": self.duplicates,
            "receipts": self.receipts,
        }


def normal_account(value: str) -> str:
    """An account as compared: upper case, no spaces; of MT940's ``BIC/account`` the account."""
    text = "".join(value.split()).upper()
    return text.rsplit("/", 1)[-1]


async def billers_of_account(session: AsyncSession, account: str) -> list[int]:
    """The billers whose collection account (IBAN or account number) ``account`` is."""
    wanted = normal_account(account)
    if not wanted:
        return []
    rows = (await session.execute(select(Biller.id, Biller.account).order_by(Biller.id))).all()
    return [
        bid
        for bid, acc in rows
        if wanted
        in {normal_account(str((acc or {}).get(k) or "")) for k in ("iban", "account_number")} - {""}
    ]


async def statement_billers(
    session: AsyncSession, account: str, hub_accounts: Collection[str]
) -> list[int] | None:
    """Whose invoices a statement of ``account`` pays: the billers of that collection account, every
    biller's (None) for a hub-wide account; a 422 problem for any other account."""
    ids = await billers_of_account(session, account)
    if ids:
        return ids
    if account and normal_account(account) in {normal_account(a) for a in hub_accounts}:
        return None
    shown = _clean(account, 35) or "none"
    raise invalid(
        "unknown-statement-account",
        f"the statement's account ({shown}) is no biller's collection account nor one of the hub's "
        "(PAYMUX_INVOICE_HUB_ACCOUNTS): nothing was imported",
        account=shown,
    )


def _of(q: Any, billers: list[int] | None) -> Any:
    return q if billers is None else q.where(Invoice.biller_id.in_(billers))


async def _by_reference(
    session: AsyncSession, line: Line, billers: list[int] | None = None
) -> tuple[Invoice | None, str]:
    refs: list[str] = []
    if line.creditor_reference and rf_valid(line.creditor_reference):
        refs.append(rf_normal(line.creditor_reference))
    for text in (line.purpose, line.reference):
        refs += [r for r in references_in(text) if r not in refs]
    for ref in refs:
        rows = list(
            (await session.scalars(_of(select(Invoice).where(Invoice.reference == ref), billers))).all()
        )
        if len(rows) > 1:  # the same reference at several billers: the open one of that amount
            rows = [r for r in rows if r.status in OPEN_STATUSES and r.currency == line.currency] or rows
            rows = [r for r in rows if r.amount - r.paid_amount == line.amount] or rows
        if len(rows) == 1:
            return rows[0], ""
        if rows:
            return None, f"reference {ref} is of {len(rows)} invoices"
    return None, ""


async def _by_amount_and_payer(
    session: AsyncSession, line: Line, billers: list[int] | None = None
) -> tuple[Invoice | None, str]:
    payer = _name(line.counterparty)
    if not payer:
        return None, ""
    q = select(Invoice).where(
        Invoice.status.in_(OPEN_STATUSES),
        Invoice.currency == line.currency,
        Invoice.amount - Invoice.paid_amount == line.amount,
    )
    rows = (await session.scalars(_of(q, billers).order_by(Invoice.id).limit(1000))).all()
    same = [r for r in rows if _name(r.payer_name) == payer]
    if len(same) == 1:
        return same[0], ""
    if same:
        return None, f"{len(same)} open invoices of {payer!r} are of this amount"
    return None, ""


async def match_line(
    session: AsyncSession, line: Line, billers: list[int] | None = None
) -> tuple[Invoice | None, str, str]:
    """The invoice of a credit line (of the billers ``billers``, every biller's when None), how it
    was found (``reference``, ``amount_payer``) and, when none, why (empty when nothing fits at all)."""
    inv, why = await _by_reference(session, line, billers)
    if inv is not None:
        return inv, "reference", ""
    if why:
        return None, "", why
    inv, why = await _by_amount_and_payer(session, line, billers)
    if inv is not None:
        return inv, "amount_payer", ""
    return None, "", why or "no invoice with this reference, nor of this amount and payer"


async def import_statement(
    session: AsyncSession, data: bytes, fmt: str | None = None, hub_accounts: Collection[str] = ()
) -> ImportResult:
    """Read a statement and apply or queue each credit line (debits are skipped). Raises a 422
    problem when the file cannot be read or its account is nobody's (nothing is stored then)."""
    try:
        parsed = parse(data, fmt)
    except StatementError as e:
        raise invalid("invalid-statement", f"the statement cannot be read: {e}") from None
    if parsed.format == "1c":
        raise invalid("invalid-statement", "1CClientBankExchange files are not read for invoices")
    billers = await statement_billers(session, parsed.account, hub_accounts)
    result = ImportResult(parsed.format, lines=len(parsed.lines))
    for line in parsed.lines:
        if line.direction != "credit" or line.amount <= 0:
            continue
        result.credits += 1
        await _take(session, parsed.format, parsed.account, line, result, billers)
    return result


async def _take(
    session: AsyncSession,
    fmt: str,
    account: str,
    line: Line,
    result: ImportResult,
    billers: list[int] | None,
) -> None:
    reference = _clean(line.bank_reference, 200) or line.uid
    if await session.scalar(select(InvoiceReceipt.id).where(InvoiceReceipt.uid == line.uid)) is not None:
        result.duplicates += 1
        return
    if (
        await session.scalar(
            select(InvoicePayment.id).where(
                InvoicePayment.method == METHOD, InvoicePayment.method_reference == reference
            )
        )
        is not None
    ):
        result.duplicates += 1  # the same entry in another file (another identity): applied already
        return
    now = utcnow()
    receipt = InvoiceReceipt(
        uid=line.uid,
        method_reference=reference,
        statement_format=fmt,
        account=_clean(account, 35),
        amount=line.amount,
        currency=line.currency,
        booked_on=line.booked_on,
        payer_name=_clean(line.counterparty, 200),
        payer_account=_clean(line.counterparty_account, 34),
        creditor_reference=_clean(line.creditor_reference, 35),
        remittance=_clean(line.purpose or line.reference, 500),
        status="waiting",
        note="",
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(receipt)
            await session.flush()
    except IntegrityError:  # the same line imported at this moment by another request
        result.duplicates += 1
        return
    inv, how, why = await match_line(session, line, billers)
    if inv is None:
        receipt.note = why[:500]
        result.unmatched += 1
    else:
        payment = await record_payment(session, inv, line.amount, METHOD, reference, line.currency)
        receipt.status, receipt.invoice_id, receipt.payment_id = "matched", inv.id, payment.id
        receipt.matched_by, receipt.resolved_by, receipt.resolved_at = how, "statement", now
        receipt.note = payment.note[:500]
        result.matched += 1
    result.receipts.append(receipt.id)
    await session.flush()


# --- the queue -----------------------------------------------------------------------------------------
async def receipt_view(session: AsyncSession, r: InvoiceReceipt) -> dict[str, Any]:
    invoice: dict[str, Any] | None = None
    if r.invoice_id is not None:
        row = (
            await session.execute(
                select(Invoice.number, Biller.code, Invoice.status)
                .join(Biller, Biller.id == Invoice.biller_id)
                .where(Invoice.id == r.invoice_id)
            )
        ).one()
        invoice = {"number": row[0], "biller": row[1], "status": row[2]}
    return {
        "id": r.id,
        "status": r.status,
        "amount": format_amount(r.amount, r.currency),
        "currency": r.currency,
        "booked_on": r.booked_on.isoformat(),
        "payer": {"name": r.payer_name, "account": r.payer_account},
        "creditor_reference": r.creditor_reference,
        "remittance": r.remittance,
        "bank_reference": r.method_reference,
        "format": r.statement_format,
        "account": r.account,
        "invoice": invoice,
        "matched_by": r.matched_by,
        "resolved_by": r.resolved_by,
        "resolved_at": r.resolved_at.isoformat() if r.resolved_at else None,
        "note": r.note,
        "created_at": r.created_at.isoformat(),
    }


async def list_receipts(
    session: AsyncSession, status: str | None, limit: int, before_id: int | None
) -> list[InvoiceReceipt]:
    q = select(InvoiceReceipt).order_by(InvoiceReceipt.id.desc()).limit(limit)
    if status is not None:
        q = q.where(InvoiceReceipt.status == status)
    if before_id is not None:
        q = q.where(InvoiceReceipt.id < before_id)
    return list((await session.scalars(q)).all())


async def count_waiting(session: AsyncSession) -> int:
    q = select(func.count()).select_from(InvoiceReceipt).where(InvoiceReceipt.status == "waiting")
    return int(await session.scalar(q) or 0)


async def _waiting(session: AsyncSession, receipt_id: int) -> InvoiceReceipt:
    r = await locked(session, InvoiceReceipt, receipt_id)
    if r is None:
        raise not_found(f"receipt {receipt_id}")
    if r.status != "waiting":
        raise Problem(
            409, "receipt-not-waiting", "Receipt resolved", f"receipt {receipt_id} is {r.status} already"
        )
    return r


async def match_receipt(
    session: AsyncSession, receipt_id: int, biller_code: str, number: str, actor: str
) -> InvoiceReceipt:
    """Apply a waiting receipt to the invoice a person chose (as ``record_payment`` applies it)."""
    r = await _waiting(session, receipt_id)
    inv = await session.scalar(
        select(Invoice)
        .join(Biller, Biller.id == Invoice.biller_id)
        .where(Biller.code == biller_code, Invoice.number == number)
    )
    if inv is None:
        raise not_found(f"invoice {number} of biller {biller_code}")
    owners = await billers_of_account(session, r.account)
    if owners and inv.biller_id not in owners:
        raise Problem(
            409,
            "receipt-other-biller",
            "Another biller's account",
            f"receipt {receipt_id} came to {r.account}, the collection account of another biller",
        )
    taken = await session.scalar(
        select(InvoicePayment).where(
            InvoicePayment.method == METHOD, InvoicePayment.method_reference == r.method_reference
        )
    )
    if taken is not None:
        raise Problem(
            409,
            "receipt-applied",
            "Applied already",
            f"the bank entry {r.method_reference} was applied already (payment {taken.id})",
        )
    payment = await record_payment(session, inv, r.amount, METHOD, r.method_reference, r.currency)
    now = utcnow()
    r.status, r.invoice_id, r.payment_id = "matched", inv.id, payment.id
    r.matched_by = r.resolved_by = actor[:100]
    r.resolved_at = now
    r.note = (payment.note or r.note)[:500]
    await session.flush()
    return r


async def ignore_receipt(session: AsyncSession, receipt_id: int, note: str, actor: str) -> InvoiceReceipt:
    r = await _waiting(session, receipt_id)
    r.status, r.resolved_by, r.resolved_at = "ignored", actor[:100], utcnow()
    if note:
        r.note = note[:500]
    await session.flush()
    return r
