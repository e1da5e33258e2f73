"""Reading a report's parameters from a query string (the admin API and the back office share it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from paymux.reports.turnover import DIMENSIONS, STAFF_ONLY, ReportError, TurnoverQuery


def split_list(values: Sequence[str]) -> tuple[str, ...]:
    """``["provider,service", "agent"]`` -> ``("provider", "service", "agent")`` (repeated or commas)."""
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


def parse_day(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as e:
        raise ReportError(f"{what} must be a date like 2026-12-31, not {value!r}") from e


def build_query(
    *,
    first: str,
    last: str,
    today: dt.date,
    group_by: Sequence[str],
    grain: str,
    timezone: str,
    filters: Mapping[str, str],
    channels: frozenset[int] | None,
) -> TurnoverQuery:
    """A checked query; the period defaults to the last 30 days up to ``today``."""
    last_day = parse_day(last, "last") if last.strip() else today
    first_day = parse_day(first, "first") if first.strip() else last_day - dt.timedelta(days=29)
    q = TurnoverQuery(
        first_day,
        last_day,
        split_list(group_by),
        grain.strip(),
        timezone.strip() or "UTC",
        {d: v.strip() for d, v in filters.items() if d in DIMENSIONS and v.strip()},
        channels,
    )
    if channels is not None:
        for d in sorted(STAFF_ONLY):
            if d in q.group_by or d in q.filters:
                raise ReportError(f"agent users cannot group or filter reports by {d}")
    q.check()
    return q
