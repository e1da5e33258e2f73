"""A report's totals in one currency: each currency's total converted at the rate in force at the end
of the period (``paymux.rates``), rounded once per currency and measure; the currencies without a rate
are named, not guessed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from paymux.money import MoneyError, check_currency
from paymux.rates.service import rate_at
from paymux.reports.turnover import MEASURES, PROVIDER_TZ, ReportError, Turnover, zone_named
from paymux.settlement.buckets import day_bounds


@dataclass
class ConvertedTotals:
    currency: str
    at: dt.datetime  # the rates in force at this moment (the end of the period)
    rates: dict[str, str] = field(default_factory=dict)  # currency -> rate used (quote per base)
    missing: list[str] = field(default_factory=list)  # currencies without a rate in force
    sums: dict[str, int] = field(default_factory=dict)  # measure -> minor units of ``currency``


async def converted_totals(session: AsyncSession, report: Turnover, currency: str) -> ConvertedTotals:
    try:
        currency = check_currency(currency.strip().upper())
    except MoneyError as e:
        raise ReportError(str(e)) from e
    q = report.query
    tz = zone_named("UTC" if q.timezone == PROVIDER_TZ else q.timezone)
    _, end = day_bounds(q.first, q.last, tz)
    out = ConvertedTotals(currency, end, sums={m: 0 for m in MEASURES if m != "payments"})
    for t in report.totals:
        if t.currency == currency:
            for m in out.sums:
                out.sums[m] += t.measure(m)
            continue
        found = await rate_at(session, t.currency, currency, end - dt.timedelta(microseconds=1))
        if found is None:
            out.missing.append(t.currency)
            continue
        out.rates[t.currency] = str(found.rate)
        for m in out.sums:
            out.sums[m] += found.convert(t.measure(m))
    return out
