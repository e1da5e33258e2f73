"""When a scheduled subscription charges: calendar rules in the customer's timezone.

A :class:`Rule` yields local calendar dates (monthly on a day, day 31 or any day past the month's
end meaning its last day; weekly on a weekday; every N days from the start date) between the start
and end dates. Each date's charge happens at ``time_of_day`` on the customer's wall clock:

- a wall time the clock skips (spring forward) happens as much later as the gap (02:30 -> 03:30);
- a wall time the clock passes twice (fall back) happens once, the first time.

A charge's *period key* is its local date (``YYYY-MM-DD``): a run is unique per subscription and key.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("monthly", "weekly", "days")
MAX_EVERY_DAYS = 366
# a rule whose next date lies further than this is treated as over (end of a finite search)
_HORIZON_DAYS = 366 * 5


class RuleError(ValueError):
    """A schedule that cannot be: unknown period or timezone, a day out of range."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One charge: the customer's local date (its period key) and the UTC instant it happens."""

    date: dt.date
    at: dt.datetime

    @property
    def period_key(self) -> str:
        return self.date.isoformat()


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`RuleError` for an unknown one."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise RuleError(f"unknown timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise RuleError(f"unknown timezone {name!r}") from exc


def parse_time_of_day(text: str) -> dt.time:
    """``HH:MM`` (24 h) as a time; :class:`RuleError` otherwise."""
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit() or not text.isascii():
        raise RuleError(f"time of day must be HH:MM, not {text!r}")
    hour, minute = int(text[:2]), int(text[3:])
    if hour > 23 or minute > 59:
        raise RuleError(f"time of day must be HH:MM, not {text!r}")
    return dt.time(hour, minute)


@dataclass(frozen=True, slots=True)
class Rule:
    period: str
    timezone: str
    start_date: dt.date
    time_of_day: dt.time = dt.time(9, 0)
    day_of_month: int | None = None  # monthly: 1..31 (past the month's end = its last day)
    weekday: int | None = None  # weekly: 0 = Monday .. 6 = Sunday
    every_days: int | None = None  # days: 1..366, counted from start_date
    end_date: dt.date | None = None  # inclusive

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.period == "monthly":
            if self.day_of_month is None or not 1 <= self.day_of_month <= 31:
                raise RuleError("a monthly schedule needs day_of_month 1..31")
        elif self.period == "weekly":
            if self.weekday is None or not 0 <= self.weekday <= 6:
                raise RuleError("a weekly schedule needs weekday 0 (Monday)..6 (Sunday)")
        elif self.period == "days":
            if self.every_days is None or not 1 <= self.every_days <= MAX_EVERY_DAYS:
                raise RuleError(f"an every-N-days schedule needs every_days 1..{MAX_EVERY_DAYS}")
        else:
            raise RuleError(f"period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if self.end_date is not None and self.end_date < self.start_date:
            raise RuleError("end_date is before start_date")

    # -- calendar -------------------------------------------------------------------------------

    def dates_from(self, day: dt.date) -> Iterator[dt.date]:
        """The rule's local dates on or after ``day``, in order (finite when there is an end date)."""
        day = max(day, self.start_date)
        last = self.end_date or day + dt.timedelta(days=_HORIZON_DAYS)
        for d in self._unbounded_from(day):
            if d > last:
                return
            yield d

    def _unbounded_from(self, day: dt.date) -> Iterator[dt.date]:
        if self.period == "monthly":
            assert self.day_of_month is not None
            year, month = day.year, day.month
            while True:
                d = dt.date(year, month, min(self.day_of_month, calendar.monthrange(year, month)[1]))
                if d >= day:
                    yield d
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                if year > dt.MAXYEAR - 1:
                    return
        elif self.period == "weekly":
            assert self.weekday is not None
            d = day + dt.timedelta(days=(self.weekday - day.weekday()) % 7)
            while d.year < dt.MAXYEAR:
                yield d
                d += dt.timedelta(days=7)
        else:
            assert self.every_days is not None
            step = self.every_days
            behind = (day - self.start_date).days
            d = self.start_date + dt.timedelta(days=-(-behind // step) * step)
            while d.year < dt.MAXYEAR:
                yield d
                d += dt.timedelta(days=step)

    # -- instants -------------------------------------------------------------------------------

    def at(self, day: dt.date) -> dt.datetime:
        """The UTC instant of ``day``'s charge (see the module's note on DST)."""
        local = dt.datetime.combine(day, self.time_of_day, tzinfo=zone(self.timezone))  # fold=0
        return local.astimezone(dt.UTC)

    def occurrences_after(self, after: dt.datetime) -> Iterator[Occurrence]:
        """Charges strictly after the UTC instant ``after``, in order."""
        tz = zone(self.timezone)
        # a day back: the local date of ``after`` may hold a charge later that day
        start = after.astimezone(tz).date() - dt.timedelta(days=1)
        for d in self.dates_from(start):
            instant = self.at(d)
            if instant > after:
                yield Occurrence(d, instant)

    def next_after(self, after: dt.datetime) -> Occurrence | None:
        """The first charge strictly after ``after`` (None when the schedule is over)."""
        return next(self.occurrences_after(after), None)

    def between(self, after: dt.datetime, until: dt.datetime, limit: int = 10_000) -> list[Occurrence]:
        """Charges in (``after``, ``until``], at most ``limit``."""
        found: list[Occurrence] = []
        for occ in self.occurrences_after(after):
            if occ.at > until or len(found) >= limit:
                break
            found.append(occ)
        return found

    def latest_due(self, after: dt.datetime, now: dt.datetime) -> Occurrence | None:
        """Catch-up: of the charges in (``after``, ``now``], the latest one (the others are not
        run: missed ticks execute once, late). None when none fell due."""
        latest: Occurrence | None = None
        for occ in self.occurrences_after(after):
            if occ.at > now:
                break
            latest = occ
        return latest
