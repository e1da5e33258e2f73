"""Working-capital forecast of a prepaid provider from its payment history, by hour of the week.

The expected outflow of an hour of the week (Monday 00:00-01:00 ... Sunday 23:00-24:00, in the
provider's timezone) is the average amount of the provider's succeeded payments in that hour over the
last ``weeks`` weeks. Walking the coming hours with that profile from the available balance (balance
plus overdraft) tells when the deposit runs out and how much a top-up must be for it to last N days.
The same profile, built only from what came before each past day, is compared with what really went
out that day (the forecast against the facts). Integer minor units throughout.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.payments.models import Payment
from paymux.settlement.balances import dialect_of
from paymux.settlement.buckets import QUARTER, local_midnight, quarter_of, quarter_start

WEEK_HOURS = 168
HORIZON_DAYS = 90


@dataclass(slots=True)
class Forecast:
    as_of: dt.datetime
    available: int  # balance + overdraft at as_of
    weeks: int
    profile: list[int]  # expected outflow per hour of the week (index weekday*24 + hour, local)
    runs_out_at: dt.datetime | None  # None: not within HORIZON_DAYS
    days: int
    need: int  # expected outflow over the next ``days`` days
    top_up: int  # what to add so the deposit lasts ``days`` days

    @property
    def hours_left(self) -> int | None:
        if self.runs_out_at is None:
            return None
        return int((self.runs_out_at - self.as_of).total_seconds() // 3600)


@dataclass(slots=True)
class Backtest:
    day: dt.date
    forecast: int
    actual: int


def hour_of_week(at: dt.datetime, tz: ZoneInfo) -> int:
    local = at.astimezone(tz)
    return local.weekday() * 24 + local.hour


async def outflow_quarters(
    session: AsyncSession, provider_id: int, currency: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, int]]:
    """Amounts of the provider's succeeded payments per 15 minutes of [start, end) (by final time)."""
    q = quarter_of(dialect_of(session), Payment.final_at).label("q")
    rows = (
        await session.execute(
            select(q, func.sum(Payment.amount))
            .where(
                Payment.provider_id == provider_id,
                Payment.final_at >= start,
                Payment.final_at < end,
                Payment.status == "succeeded",
                Payment.currency == currency,
            )
            .group_by(q)
        )
    ).all()
    return sorted((quarter_start(r[0]), int(r[1])) for r in rows)


def profile_of(
    quarters: list[tuple[dt.datetime, int]], start: dt.datetime, end: dt.datetime, weeks: int, tz: ZoneInfo
) -> list[int]:
    """Average outflow per hour of the week over [start, end) (``weeks`` weeks long), rounded half up."""
    totals = [0] * WEEK_HOURS
    for at, amount in quarters:
        if start <= at < end:
            totals[hour_of_week(at, tz)] += amount
    return [(t * 2 + weeks) // (2 * weeks) for t in totals]


def _next_hour(t: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant the local hour containing ``t`` ends."""
    floor = t.astimezone(tz).replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    return floor + dt.timedelta(hours=1)


def _expected(profile: list[int], start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> int:
    """Expected outflow over [start, end): whole hours from the profile, partial hours pro rata."""
    total = 0
    t = start
    while t < end:
        hour_end = _next_hour(t, tz)
        stop = min(hour_end, end)
        seconds = int((stop - t).total_seconds())
        total += profile[hour_of_week(t, tz)] * seconds // 3600
        t = stop
    return total


def _runs_out(profile: list[int], available: int, as_of: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
    if available <= 0:
        return as_of
    if not any(profile):
        return None
    left = available
    t = as_of
    limit = as_of + dt.timedelta(days=HORIZON_DAYS)
    while t < limit:
        hour_end = _next_hour(t, tz)
        seconds = int((hour_end - t).total_seconds())
        rate = profile[hour_of_week(t, tz)]
        spend = rate * seconds // 3600
        if spend >= left and rate > 0:
            return t + dt.timedelta(seconds=left * 3600 // rate)
        left -= spend
        t = hour_end
    return None


async def forecast(
    session: AsyncSession,
    provider_id: int,
    currency: str,
    available: int,
    tz: ZoneInfo,
    *,
    as_of: dt.datetime,
    days: int = 7,
    weeks: int = 4,
) -> Forecast:
    start = as_of - dt.timedelta(weeks=weeks)
    quarters = await outflow_quarters(session, provider_id, currency, start, as_of)
    profile = profile_of(quarters, start, as_of, weeks, tz)
    need = _expected(profile, as_of, as_of + dt.timedelta(days=days), tz)
    return Forecast(
        as_of=as_of,
        available=available,
        weeks=weeks,
        profile=profile,
        runs_out_at=_runs_out(profile, available, as_of, tz),
        days=days,
        need=need,
        top_up=max(0, need - available),
    )


async def backtest(
    session: AsyncSession,
    provider_id: int,
    currency: str,
    tz: ZoneInfo,
    *,
    first: dt.date,
    last: dt.date,
    weeks: int = 4,
) -> list[Backtest]:
    """Per local day first..last: the outflow forecast from the ``weeks`` weeks before it, and the fact."""
    start = local_midnight(first, tz) - dt.timedelta(weeks=weeks)
    end = local_midnight(last + dt.timedelta(days=1), tz)
    quarters = await outflow_quarters(session, provider_id, currency, start, end)
    out: list[Backtest] = []
    d = first
    while d <= last:
        day_start = local_midnight(d, tz)
        day_end = local_midnight(d + dt.timedelta(days=1), tz)
        profile = profile_of(quarters, day_start - dt.timedelta(weeks=weeks), day_start, weeks, tz)
        predicted = _expected(profile, day_start, day_end, tz)
        actual = sum(a for at, a in quarters if day_start <= at < day_end)
        out.append(Backtest(d, predicted, actual))
        d += dt.timedelta(days=1)
    return out


__all__ = ["QUARTER", "Backtest", "Forecast", "backtest", "forecast", "hour_of_week", "profile_of"]
