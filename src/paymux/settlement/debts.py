"""Debts to postpaid providers by day of the provider's own timezone.

A payment counts on the local day it became final (succeeded), like the provider's registers. The
debt of a day is the amount of its succeeded payments, less the remuneration stored with each payment
(computed by the provider's remuneration tariff) when the provider's settlement terms withhold it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.payments.models import Payment
from paymux.settlement.balances import dialect_of
from paymux.settlement.buckets import day_bounds, local_midnight, quarter_of, quarter_start
from paymux.settlement.models import PaymentOrder, SettlementDetails


@dataclass(slots=True)
class DebtDay:
    day: dt.date
    payments: int = 0
    gross: int = 0  # amounts of succeeded payments
    remuneration: int = 0  # our remuneration on them
    withheld: int = 0  # the part of the remuneration kept back from the payment
    debt: int = 0  # gross - withheld


def totals(days: list[DebtDay]) -> DebtDay:
    t = DebtDay(days[0].day if days else dt.date.min)
    for d in days:
        t.payments += d.payments
        t.gross += d.gross
        t.remuneration += d.remuneration
        t.withheld += d.withheld
        t.debt += d.debt
    return t


async def withholds(session: AsyncSession, provider_id: int) -> bool:
    details = await session.get(SettlementDetails, provider_id)
    return True if details is None else details.withhold_remuneration


async def debts_by_day(
    session: AsyncSession, provider_id: int, tz: ZoneInfo, first: dt.date, last: dt.date, *, withhold: bool
) -> dict[str, list[DebtDay]]:
    """Per currency, one row per local day first..last (days without payments included, as zeros)."""
    start, end = day_bounds(first, last, tz)
    q = quarter_of(dialect_of(session), Payment.final_at).label("q")
    rows = (
        await session.execute(
            select(
                q, Payment.currency, func.count(), func.sum(Payment.amount), func.sum(Payment.remuneration)
            )
            .where(
                Payment.provider_id == provider_id,
                Payment.final_at >= start,
                Payment.final_at < end,
                Payment.status == "succeeded",
            )
            .group_by(q, Payment.currency)
        )
    ).all()
    ndays = (last - first).days + 1
    out: dict[str, list[DebtDay]] = defaultdict(
        lambda: [DebtDay(first + dt.timedelta(days=i)) for i in range(ndays)]
    )
    for quarter, currency, count, gross, remuneration in rows:
        day = quarter_start(quarter).astimezone(tz).date()
        i = (day - first).days
        if not 0 <= i < ndays:
            continue
        d = out[currency][i]
        d.payments += int(count)
        d.gross += int(gross)
        d.remuneration += int(remuneration or 0)
    for days in out.values():
        for d in days:
            d.withheld = d.remuneration if withhold else 0
            d.debt = d.gross - d.withheld
    return dict(out)


async def first_payment_day(
    session: AsyncSession, provider_id: int, currency: str, tz: ZoneInfo
) -> dt.date | None:
    first = await session.scalar(
        select(func.min(Payment.final_at)).where(
            Payment.provider_id == provider_id, Payment.status == "succeeded", Payment.currency == currency
        )
    )
    if first is None:
        return None
    if first.tzinfo is None:
        first = first.replace(tzinfo=dt.UTC)
    return first.astimezone(tz).date()


async def currencies(session: AsyncSession, provider_id: int) -> list[str]:
    rows = await session.scalars(
        select(Payment.currency)
        .where(Payment.provider_id == provider_id, Payment.status == "succeeded")
        .distinct()
    )
    return sorted(rows.all())


async def settled_through(session: AsyncSession, provider_id: int, currency: str) -> dt.date | None:
    """The last local day covered by a live (not cancelled) payment order."""
    found: dt.date | None = await session.scalar(
        select(func.max(PaymentOrder.period_end)).where(
            PaymentOrder.provider_id == provider_id,
            PaymentOrder.currency == currency,
            PaymentOrder.status != "cancelled",
        )
    )
    return found


def local_today(tz: ZoneInfo, now: dt.datetime) -> dt.date:
    return now.astimezone(tz).date()


__all__ = [
    "DebtDay",
    "currencies",
    "debts_by_day",
    "first_payment_day",
    "local_midnight",
    "local_today",
    "settled_through",
    "totals",
    "withholds",
]
