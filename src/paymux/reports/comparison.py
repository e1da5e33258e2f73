"""The operational report: a period's turnover beside the same-length periods before it.

Whole calendar months are compared with the months before them; any other period with the periods of
the same number of days right before it. Each group gets the chosen measure per period, its change
against the period just before and against the mean of all earlier periods (percent, one decimal).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from paymux.reports.turnover import MEASURES, ReportError, TurnoverQuery, turnover

MAX_EARLIER = 12


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date


@dataclass
class ComparedRow:
    keys: tuple[str, ...]
    currency: str
    values: list[int]  # the measure per period, the chosen one first
    vs_previous: Decimal | None  # percent change against the period just before (None: it had nothing)
    vs_mean: Decimal | None  # percent change against the mean of the earlier periods


@dataclass
class Comparison:
    query: TurnoverQuery
    measure: str
    periods: list[Period]  # the chosen one first, then earlier and earlier
    rows: list[ComparedRow]
    totals: list[ComparedRow]  # one per currency


def _whole_months(first: dt.date, last: dt.date) -> int:
    """How many whole calendar months first..last spans exactly (0 if it is not whole months)."""
    if first.day != 1 or (last + dt.timedelta(days=1)).day != 1:
        return 0
    return (last.year - first.year) * 12 + last.month - first.month + 1


def _month_start(d: dt.date, back: int) -> dt.date:
    m = d.year * 12 + d.month - 1 - back
    return dt.date(m // 12, m % 12 + 1, 1)


def earlier_periods(first: dt.date, last: dt.date, earlier: int) -> list[Period]:
    """The chosen period and ``earlier`` periods before it, newest first."""
    months = _whole_months(first, last)
    out = [Period(first, last)]
    for k in range(1, earlier + 1):
        if months:
            start = _month_start(first, k * months)
            end = _month_start(first, (k - 1) * months) - dt.timedelta(days=1)
        else:
            days = (last - first).days + 1
            start, end = first - dt.timedelta(days=k * days), last - dt.timedelta(days=k * days)
        out.append(Period(start, end))
    return out


def percent_change(now: int, before: Decimal) -> Decimal | None:
    if before == 0:
        return None
    return ((Decimal(now) - before) * 100 / before).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _compared(keys: tuple[str, ...], currency: str, values: list[int]) -> ComparedRow:
    earlier = values[1:]
    mean = Decimal(sum(earlier)) / len(earlier) if earlier else Decimal(0)
    previous = Decimal(earlier[0]) if earlier else Decimal(0)
    now = values[0]
    return ComparedRow(keys, currency, values, percent_change(now, previous), percent_change(now, mean))


async def compare(session: AsyncSession, q: TurnoverQuery, *, earlier: int, measure: str) -> Comparison:
    if not 1 <= earlier <= MAX_EARLIER:
        raise ReportError(f"compare with 1 to {MAX_EARLIER} earlier periods")
    if measure not in MEASURES:
        raise ReportError(f"unknown measure {measure!r} (known: {', '.join(MEASURES)})")
    if q.grain:
        raise ReportError("a comparison is by whole periods: leave the grain empty")
    q.check()
    periods = earlier_periods(q.first, q.last, earlier)
    table: dict[tuple[tuple[str, ...], str], list[int]] = {}
    totals: dict[str, list[int]] = {}
    for i, p in enumerate(periods):
        report = await turnover(session, q.shifted(p.first, p.last))
        for r in report.rows:
            table.setdefault((r.keys, r.currency), [0] * len(periods))[i] = r.measure(measure)
        for t in report.totals:
            totals.setdefault(t.currency, [0] * len(periods))[i] = t.measure(measure)
    rows = [_compared(k, c, v) for (k, c), v in sorted(table.items())]
    return Comparison(q, measure, periods, rows, [_compared((), c, totals[c]) for c in sorted(totals)])
