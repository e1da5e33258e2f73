"""Payment attempts of the hosted page: starting one by a method, and applying what the method's
processor says (its signed callback or the status poll). Services never commit.

An approval applies the payment through :func:`paymux.invoices.service.record_payment` with the
attempt's reference as the method reference, so a repeated or late confirmation (the callback and
the poll both, or a processor's retries) pays once; what the invoice cannot take (a cancelled
invoice, an over-payment) is kept and flagged for a refund decision there.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.invoices import service
from paymux.invoices.methods.base import CallbackEvent
from paymux.invoices.models import ATTEMPT_OPEN, OPEN_STATUSES, Biller, Invoice, InvoiceAttempt

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def token_ok(token: str) -> bool:
    return bool(TOKEN.fullmatch(token))


async def invoice_for_token(session: AsyncSession, token: str) -> tuple[Invoice, Biller] | None:
    """The invoice of a payment link and its biller; None when unknown (or the biller is disabled)."""
    if not token_ok(token):
        return None
    inv = await service.invoice_by_token(session, token)
    if inv is None:
        return None
    biller = await session.get(Biller, inv.biller_id)
    if biller is None or not biller.enabled:
        return None
    return inv, biller


def payable(inv: Invoice) -> bool:
    return inv.status in OPEN_STATUSES and inv.amount > inv.paid_amount


async def create(session: AsyncSession, inv: Invoice, method: str) -> InvoiceAttempt:
    """A new attempt to pay what is due on the invoice by ``method``."""
    now = utcnow()
    attempt = InvoiceAttempt(
        invoice_id=inv.id,
        method=method,
        reference="at_" + secrets.token_urlsafe(18),
        status="started",
        amount=inv.amount - inv.paid_amount,
        currency=inv.currency,
        detail="",
        created_at=now,
        updated_at=now,
    )
    session.add(attempt)
    await session.flush()
    return attempt


async def by_reference(session: AsyncSession, reference: str, *, lock: bool = False) -> InvoiceAttempt | None:
    if not token_ok(reference):
        return None
    q = select(InvoiceAttempt).where(InvoiceAttempt.reference == reference)
    if lock:
        q = q.with_for_update()
    found: InvoiceAttempt | None = await session.scalar(q)
    return found


async def apply_event(
    session: AsyncSession, attempt: InvoiceAttempt, event: CallbackEvent, *, now: dt.datetime | None = None
) -> bool:
    """Apply the processor's word about ``attempt`` (lock it first). Returns whether a payment was
    recorded now or before (an approval)."""
    now = now or utcnow()
    if event.processor_ref and not attempt.processor_ref:
        attempt.processor_ref = event.processor_ref
    if event.status == "approved":
        inv = await session.get(Invoice, attempt.invoice_id)
        assert inv is not None
        amount = event.amount if event.amount is not None else attempt.amount
        currency = event.currency or attempt.currency
        try:
            await service.record_payment(session, inv, amount, attempt.method, attempt.reference, currency)
        except service.DuplicatePayment:  # applied before: nothing more to do
            pass
        if attempt.status != "approved":
            attempt.status, attempt.updated_at = "approved", now
            attempt.detail = event.detail[:500]
        return True
    if event.status == "declined" and attempt.status != "approved":
        attempt.status, attempt.updated_at = "declined", now
        attempt.detail = event.detail[:500]
    elif event.status == "pending" and attempt.status == "started":
        attempt.status, attempt.updated_at = "pending", now
    return False


def expire_if_old(attempt: InvoiceAttempt, minutes: int, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    if attempt.status in ATTEMPT_OPEN and now - attempt.created_at > dt.timedelta(minutes=minutes):
        attempt.status, attempt.updated_at = "expired", now
        return True
    return False
