"""The refund decision about money kept in a biller's refund hold. Services never commit.

What an invoice could not take (an over-payment, a payment to a cancelled or paid invoice, another
currency) is kept: the payment's ``excess`` is credited to ``biller_refund_hold`` and the payment is
flagged (``refund_review``). A person decides, once per payment (:class:`InvoiceRefund`, unique per
payment: deciding again answers the decision made; another decision is a 409):

- ``refund`` to the payer: through the method's processor when it refunds (``card``: the acquirer's
  refund of the attempt), else, for a bank transfer matched from a statement, by a payment order to
  the payer's account (a pain.001 credit transfer, :func:`refund_xml`); other methods cannot be
  refunded here (409: release it, or refund outside the hub and release);
- ``release`` it to the biller: it is paid out with the biller's next payout.

Either way one balanced journal entry empties the hold:

| decision | ``biller_refund_hold`` | other side |
|---|---|---|
| refund (``invoice_refund``) | + held | ``biller_collected`` - held (the money leaves) |
| release (``invoice_hold_release``) | + held | ``biller_payable`` - held (owed to the biller) |

The payment's flag is cleared, and the invoice's once none of its payments waits for a decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, not_found
from paymux.invoices.ledger import COLLECTED, HOLD, PAYABLE
from paymux.invoices.methods.base import MethodError, PayMethod, UnknownMethod
from paymux.invoices.models import (
    Biller,
    Invoice,
    InvoiceAttempt,
    InvoicePayment,
    InvoiceReceipt,
    InvoiceRefund,
)
from paymux.ledger.service import AccountCache, AccountKey, Line, post_entry
from paymux.money import format_amount

TRANSFER = "transfer"  # the method of payments matched from bank statements (invoices.receipts)
#: a method's plug-in for a biller (the hosted page's ``plugin``: the hub's settings and the biller's)
PluginFor = Callable[[Biller, str], PayMethod]


def refund_number(payment_id: int) -> str:
    return f"IRF-{payment_id}"


def refund_view(r: InvoiceRefund, biller_code: str, invoice_number: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "payment_id": r.payment_id,
        "biller": biller_code,
        "invoice": invoice_number,
        "decision": r.decision,
        "channel": r.channel,
        "amount": format_amount(r.amount, r.currency),
        "currency": r.currency,
        "number": r.number,
        "processor_ref": r.processor_ref,
        "payee": {k: r.payee.get(k) for k in ("name", "iban", "account") if r.payee.get(k)} or None,
        "note": r.note,
        "created_by": r.created_by,
        "created_at": r.created_at.isoformat(),
    }
    if r.channel == "payment_order":
        out["pain001"] = f"/api/v1/admin/invoices/refunds/{r.id}/pain001"
    return out


def held_view(p: InvoicePayment, biller_code: str, invoice_number: str) -> dict[str, Any]:
    return {
        "payment_id": p.id,
        "biller": biller_code,
        "invoice": invoice_number,
        "method": p.method,
        "method_reference": p.method_reference,
        "amount": format_amount(p.amount, p.currency),
        "held": format_amount(p.excess, p.currency),
        "currency": p.currency,
        "note": p.note,
        "at": p.at.isoformat(),
    }


async def waiting(session: AsyncSession, limit: int = 100, invoice_id: int | None = None) -> list[Any]:
    """Payments with money in the hold and no decision yet, oldest first: (payment, biller code,
    invoice number) rows."""
    q = (
        select(InvoicePayment, Biller.code, Invoice.number)
        .join(Invoice, Invoice.id == InvoicePayment.invoice_id)
        .join(Biller, Biller.id == Invoice.biller_id)
        .where(
            InvoicePayment.excess > 0,
            ~exists().where(InvoiceRefund.payment_id == InvoicePayment.id),
        )
        .order_by(InvoicePayment.id)
        .limit(limit)
    )
    if invoice_id is not None:
        q = q.where(InvoicePayment.invoice_id == invoice_id)
    return list((await session.execute(q)).all())


async def decided(session: AsyncSession, limit: int = 100, invoice_id: int | None = None) -> list[Any]:
    """Decisions made, newest first: (refund, biller code, invoice number) rows."""
    q = (
        select(InvoiceRefund, Biller.code, Invoice.number)
        .join(Invoice, Invoice.id == InvoiceRefund.invoice_id)
        .join(Biller, Biller.id == InvoiceRefund.biller_id)
        .order_by(InvoiceRefund.id.desc())
        .limit(limit)
    )
    if invoice_id is not None:
        q = q.where(InvoiceRefund.invoice_id == invoice_id)
    return list((await session.execute(q)).all())


def _refused(slug: str, title: str, detail: str) -> Problem:
    return Problem(409, slug, title, detail)


async def _through_method(
    session: AsyncSession, plugin_for: PluginFor, biller: Biller, p: InvoicePayment, number: str
) -> str | None:
    """Refund through the method's processor; its refund id, or None when the method cannot."""
    attempt = await session.scalar(
        select(InvoiceAttempt).where(InvoiceAttempt.reference == p.method_reference)
    )
    if attempt is None:
        return None
    try:
        pm = plugin_for(biller, attempt.method)
    except UnknownMethod:
        return None
    if not pm.supports_refund:
        return None
    try:
        return await pm.refund(attempt, p.excess, p.currency, number)
    except MethodError as e:
        raise Problem(502, "refund-failed", "Refund not made", f"the processor did not refund: {e}") from None


async def _payer_account(session: AsyncSession, p: InvoicePayment) -> dict[str, Any] | None:
    """The payer's account of a bank transfer, from the statement line it was matched from."""
    if p.method != TRANSFER:
        return None
    r = await session.scalar(select(InvoiceReceipt).where(InvoiceReceipt.payment_id == p.id))
    if r is None or not r.payer_account:
        return None
    account = r.payer_account.replace(" ", "").upper()
    is_iban = account[:2].isalpha() and account[2:4].isdigit()
    return {
        "provider": f"refund of {p.method_reference}"[:100],  # named in the export checks' messages
        "name": r.payer_name or "Payer",
        "iban": account if is_iban else None,
        "account": None if is_iban else account,
    }


async def decide(
    session: AsyncSession,
    payment_id: int,
    decision: str,
    plugin_for: PluginFor,
    *,
    actor: str,
    note: str = "",
    now: dt.datetime | None = None,
) -> tuple[InvoiceRefund, bool]:
    """Refund or release what ``payment_id`` left in the hold (see the module). Returns the decision and
    whether it was made now (False: made before, answered again)."""
    if decision not in ("refund", "release"):
        raise ValueError("decision is refund or release")
    p = await locked(session, InvoicePayment, payment_id)
    if p is None:
        raise not_found(f"payment {payment_id}")
    before = await session.scalar(select(InvoiceRefund).where(InvoiceRefund.payment_id == p.id))
    if before is not None:
        if before.decision != decision:
            raise _refused(
                "refund-decided", "Decided already", f"payment {p.id}'s hold was decided: {before.decision}"
            )
        return before, False
    if p.excess <= 0:
        raise _refused("nothing-held", "Nothing held", f"payment {p.id} left nothing in the refund hold")
    inv = await session.get(Invoice, p.invoice_id)
    assert inv is not None
    biller = await session.get(Biller, inv.biller_id)
    assert biller is not None
    number = refund_number(p.id)
    channel, processor_ref, payee = "biller", None, {}
    if decision == "refund":
        processor_ref = await _through_method(session, plugin_for, biller, p, number)
        if processor_ref is not None:
            channel = "method"
        else:
            account = await _payer_account(session, p)
            if account is None:
                raise _refused(
                    "refund-not-possible",
                    "Cannot refund here",
                    f"the {p.method} payment {p.method_reference} can be refunded neither through its "
                    "method nor by a transfer to a known payer account: release it to the biller, or "
                    "refund it outside the hub and then release it",
                )
            channel, payee = "payment_order", account
    other = COLLECTED if decision == "refund" else PAYABLE
    entry_id = await post_entry(
        session,
        AccountCache(),
        "invoice_refund" if decision == "refund" else "invoice_hold_release",
        [
            Line(AccountKey(HOLD, biller.id, p.currency), p.excess),
            Line(AccountKey(other, biller.id, p.currency), -p.excess),
        ],
        memo=f"{decision} {number}: payment {p.id} ({p.method} {p.method_reference})"[:500],
    )
    row = InvoiceRefund(
        payment_id=p.id,
        invoice_id=inv.id,
        biller_id=biller.id,
        decision=decision,
        channel=channel,
        amount=p.excess,
        currency=p.currency,
        number=number,
        processor_ref=processor_ref,
        payee=payee,
        note=note[:500],
        entry_id=entry_id,
        created_by=actor[:100],
        created_at=now or utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:  # pragma: no cover - the payment's lock makes this a bug, not a race
        raise _refused("refund-decided", "Decided already", f"payment {p.id}'s hold was decided") from None
    p.refund_review = False
    locked_inv = await locked(session, Invoice, inv.id)
    assert locked_inv is not None
    others = await session.scalar(
        select(
            exists().where(
                InvoicePayment.invoice_id == inv.id,
                InvoicePayment.refund_review.is_(True),
                InvoicePayment.id != p.id,
            )
        )
    )
    if not others and not (locked_inv.status == "cancelled" and locked_inv.paid_amount):
        locked_inv.refund_review = False
    await session.flush()
    return row, True


def refund_xml(rows: list[InvoiceRefund], *, created_at: dt.datetime, execution_date: dt.date) -> bytes:
    """A pain.001 credit transfer of refunds by payment order (our account from
    ``PAYMUX_SETTLEMENT_DEBTOR_*``); a 409 problem when our or the payer's account is missing."""
    from paymux.settlement.exports import pain001
    from paymux.settlement.exports.checks import check_export
    from paymux.settlement.models import PaymentOrder
    from paymux.settlement.settings import SettlementSettings

    orders = [
        PaymentOrder(
            number=r.number,
            currency=r.currency,
            amount=r.amount,
            payee=r.payee,
            purpose=f"Refund {r.number}",
        )
        for r in rows
    ]
    settings = SettlementSettings()
    check_export(settings, "pain001", orders)
    return pain001.build(
        orders,
        settings,
        message_id=f"{rows[0].number}-{created_at:%Y%m%d%H%M%S}"[:35],
        execution_date=execution_date,
        created_at=created_at,
    )
