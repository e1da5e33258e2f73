"""Payments' activity by provider (or service): a day's turnover by local hour, success rates, queue depth.

What the dashboard charts. Sums are per currency; a scope of channels (an agent's) limits every count.
Hours are the local hours of the viewer's day, summed from 15-minute UTC buckets
(:mod:`paymux.settlement.buckets`), so a day of 23 or 25 hours (a clock change) has as many.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.payments.models import FINAL_STATUSES, Payment
from paymux.settlement.balances import dialect_of
from paymux.settlement.buckets import local_midnight, periods, quarter_of, quarter_start

GROUP_COLUMNS = {"provider": Payment.provider_id, "service": Payment.service_id}
OPEN_STATUSES = ("accepted", "processing")  # the statuses a payment waits in (FINAL_STATUSES: done)


@dataclass
class HourlyTurnover:
    hours: list[dt.datetime]  # UTC starts of the day's local hours
    # currency -> group id -> amount per hour (minor units, 0 where nothing succeeded)
    amounts: dict[str, dict[int, list[int]]]


def _where(channels: Collection[int] | None) -> list[Any]:
    return [] if channels is None else [Payment.channel_id.in_(sorted(channels) or [-1])]


async def turnover_by_hour(
    session: AsyncSession, day: dt.date, tz: ZoneInfo, by: str, channels: Collection[int] | None = None
) -> HourlyTurnover:
    """Succeeded payments created on local ``day``: their amount per local hour, per group (``by``:
    provider or service) and currency."""
    start = local_midnight(day, tz)
    bounds = periods(start, local_midnight(day + dt.timedelta(days=1), tz), "hour", tz)
    hours = bounds[:-1]
    column = GROUP_COLUMNS[by]
    quarter = quarter_of(dialect_of(session), Payment.created_at).label("q")
    rows = (
        await session.execute(
            select(column, Payment.currency, quarter, func.sum(Payment.amount))
            .where(
                Payment.status == "succeeded",
                Payment.created_at >= start,
                Payment.created_at < bounds[-1],
                *_where(channels),
            )
            .group_by(column, Payment.currency, quarter)
        )
    ).all()
    amounts: dict[str, dict[int, list[int]]] = defaultdict(dict)
    for group, currency, q, amount in rows:
        i = bisect.bisect_right(hours, quarter_start(q)) - 1  # the local hour the quarter is in
        if i < 0 or group is None:
            continue
        values = amounts[currency].setdefault(int(group), [0] * len(hours))
        values[i] += int(amount or 0)
    return HourlyTurnover(hours, dict(amounts))


@dataclass
class Outcomes:
    succeeded: int = 0
    finished: int = 0  # succeeded, failed or cancelled

    @property
    def rate(self) -> int | None:
        """Percent succeeded of the finished (rounded down), None when none finished."""
        return None if self.finished == 0 else 100 * self.succeeded // self.finished


async def outcomes_by_provider(
    session: AsyncSession, since: dt.datetime, channels: Collection[int] | None = None
) -> dict[int, Outcomes]:
    """Payments created since ``since`` that are final, by provider: succeeded of finished."""
    rows = (
        await session.execute(
            select(Payment.provider_id, Payment.status, func.count())
            .where(Payment.created_at >= since, Payment.status.in_(FINAL_STATUSES), *_where(channels))
            .group_by(Payment.provider_id, Payment.status)
        )
    ).all()
    out: dict[int, Outcomes] = defaultdict(Outcomes)
    for provider, status, n in rows:
        if provider is None:
            continue
        o = out[int(provider)]
        o.finished += int(n)
        if status == "succeeded":
            o.succeeded += int(n)
    return dict(out)


async def queue_by_provider(
    session: AsyncSession, channels: Collection[int] | None = None
) -> dict[int, dict[str, int]]:
    """Unfinished payments by provider and status (accepted: waiting to be sent; processing)."""
    rows = (
        await session.execute(
            select(Payment.provider_id, Payment.status, func.count())
            .where(Payment.status.in_(OPEN_STATUSES), *_where(channels))
            .group_by(Payment.provider_id, Payment.status)
        )
    ).all()
    out: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OPEN_STATUSES, 0))
    for provider, status, n in rows:
        if provider is not None:
            out[int(provider)][str(status)] += int(n)
    return dict(out)
