"""Grouping timestamps into 15-minute UTC buckets in SQL, then into local hours and days in Python.

Every timezone offset in use is a multiple of 15 minutes, so quarter-hour sums add up exactly to the
hours and days of any timezone (a provider's, a user's).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Integer, cast, func
from sqlalchemy.sql.elements import ColumnElement

QUARTER = 900


def quarter_of(dialect: str, column: Any) -> ColumnElement[Any]:
    """SQL: the 15-minute bucket number (epoch seconds // 900) of a UTC timestamp column."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer) // QUARTER  # integer division (/ is true division)
    return cast(func.floor(func.extract("epoch", column) / QUARTER), BigInteger)


def quarter_start(n: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(n) * QUARTER, dt.UTC)


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant a local day starts."""
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def day_bounds(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """UTC [start, end) of the local days first..last."""
    return local_midnight(first, tz), local_midnight(last + dt.timedelta(days=1), tz)


def periods(start: dt.datetime, end: dt.datetime, granularity: str, tz: ZoneInfo) -> list[dt.datetime]:
    """UTC starts of the local hours or days overlapping [start, end), plus the end of the last one."""
    if granularity == "day":
        d = start.astimezone(tz).date()
        out = [local_midnight(d, tz)]
        while out[-1] < end:
            d += dt.timedelta(days=1)
            out.append(local_midnight(d, tz))
        return out
    if granularity != "hour":
        raise ValueError("granularity must be hour or day")
    local = start.astimezone(tz)
    first = local.replace(minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    out = [first]
    while out[-1] < end:
        out.append(out[-1] + dt.timedelta(hours=1))
    return out


def spread(bounds: list[dt.datetime], items: Iterable[tuple[dt.datetime, int]]) -> list[int]:
    """Sum of values per period ``[bounds[i], bounds[i+1])``; items outside are ignored."""
    sums = [0] * (len(bounds) - 1)
    for at, value in items:
        i = bisect.bisect_right(bounds, at) - 1
        if 0 <= i < len(sums):
            sums[i] += value
    return sums
