"""Invoice collections in the double-entry ledger, and the daily payouts to billers.

Each payment recorded on an invoice (any method) is one journal entry ``invoice_collection``, in the
payment's currency, summing to zero:

| account (owner) | amount |
|---|---|
| ``biller_collected`` (the biller) | + what arrived |
| ``biller_payable`` (the biller) | - what the invoice took, less the fee |
| ``revenue_biller_fees`` (system) | - the biller's fixed fee (when the invoice took the payment) |
| ``biller_refund_hold`` (the biller) | - what the invoice could not take (refund review) |

The fee is the biller's fixed ``fee_amount`` per payment, charged when the fee is in the payment's
currency and the invoice took something (never more than it took).

A payout for a day sends a biller what was credited to its ``biller_payable`` before the end of that
day (business time) less what earlier payouts sent: one :class:`InvoicePayout` per biller, currency and
day, and an entry ``invoice_payout`` (``biller_payable`` + amount, ``biller_collected`` - amount). A
payout made again for the same day is the same payout; the next day's never repeats it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.invoices.models import Biller, InvoicePayment, InvoicePayout
from paymux.ledger.models import Account, Posting
from paymux.ledger.service import SYSTEM, AccountCache, AccountKey, Line, post_entry

COLLECTED, PAYABLE = "biller_collected", "biller_payable"
HOLD, FEES = "biller_refund_hold", "revenue_biller_fees"


def collection_lines(biller: Biller, payment: InvoicePayment) -> tuple[list[Line], int]:
    """The entry's lines of a payment and the fee charged."""
    c = payment.currency
    fee = 0
    if payment.applied > 0 and biller.fee_currency == c:
        fee = min(biller.fee_amount, payment.applied)
    lines = [
        Line(AccountKey(COLLECTED, biller.id, c), payment.amount),
        Line(AccountKey(PAYABLE, biller.id, c), -(payment.applied - fee)),
        Line(AccountKey(FEES, SYSTEM, c), -fee),
        Line(AccountKey(HOLD, biller.id, c), -payment.excess),
    ]
    return lines, fee


async def post_collection(session: AsyncSession, biller: Biller, payment: InvoicePayment) -> int:
    """Post a payment just recorded; returns the entry's id."""
    lines, _fee = collection_lines(biller, payment)
    return await post_entry(
        session,
        AccountCache(),
        "invoice_collection",
        lines,
        memo=f"invoice payment {payment.id} ({payment.method} {payment.method_reference})"[:500],
        at=payment.at,
    )


def day_end(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The first instant after ``day`` in ``tz``, in UTC."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)


def payee_of(biller: Biller) -> dict[str, Any]:
    a = biller.account or {}
    return {
        "provider": biller.code,  # named in the export checks' messages
        "name": a.get("holder") or biller.name,
        "iban": a.get("iban"),
        "bic": a.get("bic"),
        "account": a.get("account_number"),
        "bik": a.get("bik"),
    }


@dataclass
class PayoutResult:
    payout: InvoicePayout
    biller: Biller
    created: bool


async def _due(session: AsyncSession, biller_id: int, currency: str, until: dt.datetime) -> int:
    credited = await session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(Account, Account.id == Posting.account_id)
        .where(
            Account.kind == PAYABLE,
            Account.owner_id == biller_id,
            Account.currency == currency,
            Posting.amount < 0,
            Posting.created_at < until,
        )
    )
    sent = await session.scalar(
        select(func.coalesce(func.sum(InvoicePayout.amount), 0)).where(
            InvoicePayout.biller_id == biller_id, InvoicePayout.currency == currency
        )
    )
    return -int(credited or 0) - int(sent or 0)


def payout_number(biller_id: int, day: dt.date, currency: str) -> str:
    return f"IPO-{biller_id}-{day:%Y%m%d}-{currency}"


async def make_payouts(
    session: AsyncSession,
    day: dt.date,
    tz: ZoneInfo,
    *,
    actor: str = "system",
    biller_code: str | None = None,
) -> tuple[list[PayoutResult], list[str]]:
    """The payouts of ``day`` (made now where due, or as made before), per biller and currency, and the
    codes of the billers owed something who have no account to pay to (nothing is made for them)."""
    until = day_end(day, tz)
    skipped: list[str] = []
    q = select(Biller).order_by(Biller.code)
    if biller_code is not None:
        q = q.where(Biller.code == biller_code)
    out: list[PayoutResult] = []
    for biller in (await session.scalars(q)).all():
        currencies = (
            await session.scalars(
                select(Account.currency)
                .where(Account.kind == PAYABLE, Account.owner_id == biller.id)
                .order_by(Account.currency)
            )
        ).all()
        for currency in currencies:
            found = await session.scalar(
                select(InvoicePayout).where(
                    InvoicePayout.biller_id == biller.id,
                    InvoicePayout.currency == currency,
                    InvoicePayout.payout_date == day,
                )
            )
            if found is not None:
                out.append(PayoutResult(found, biller, False))
                continue
            amount = await _due(session, biller.id, currency, until)
            if amount <= 0:
                continue
            payee = payee_of(biller)
            if not (payee.get("iban") or payee.get("account")):
                skipped.append(biller.code)
                continue
            number = payout_number(biller.id, day, currency)
            try:
                async with session.begin_nested():
                    entry_id = await post_entry(
                        session,
                        AccountCache(),
                        "invoice_payout",
                        [
                            Line(AccountKey(PAYABLE, biller.id, currency), amount),
                            Line(AccountKey(COLLECTED, biller.id, currency), -amount),
                        ],
                        memo=f"payout {number} to biller {biller.code}",
                    )
                    payout = InvoicePayout(
                        number=number,
                        biller_id=biller.id,
                        currency=currency,
                        payout_date=day,
                        amount=amount,
                        payee=payee,
                        entry_id=entry_id,
                        created_by=actor[:100],
                        created_at=utcnow(),
                    )
                    session.add(payout)
                    await session.flush()
            except IntegrityError:  # made at this moment by another run: answer that one
                again = await session.scalar(select(InvoicePayout).where(InvoicePayout.number == number))
                if again is None:
                    raise
                out.append(PayoutResult(again, biller, False))
                continue
            out.append(PayoutResult(payout, biller, True))
    return out, sorted(set(skipped))


def payout_xml(
    payouts: list[InvoicePayout],
    *,
    message_id: str,
    execution_date: dt.date,
    created_at: dt.datetime,
) -> bytes:
    """A pain.001 credit transfer file of ``payouts`` (the settlement exporter's; our account from
    ``PAYMUX_SETTLEMENT_DEBTOR_*``). Raises a 409 problem when our or the biller's account is missing."""
    from paymux.settlement.exports import pain001
    from paymux.settlement.exports.checks import check_export
    from paymux.settlement.models import PaymentOrder
    from paymux.settlement.settings import SettlementSettings

    orders = [
        PaymentOrder(
            number=p.number,
            currency=p.currency,
            amount=p.amount,
            payee=p.payee,
            purpose=f"Invoice collections of {p.payout_date.isoformat()}, less fees",
        )
        for p in payouts
    ]
    settings = SettlementSettings()
    check_export(settings, "pain001", orders)
    return pain001.build(
        orders, settings, message_id=message_id, execution_date=execution_date, created_at=created_at
    )
