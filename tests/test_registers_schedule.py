"""Periods in the provider's timezone, due times, catch-up, and the patterns of names."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from paymux.registers.patterns import PatternError, compile_line, render, safe_file_name
from paymux.registers.schedule import Period, PeriodError, due_periods, parse_period
from paymux.registers.schemas import Schedule

MSK = ZoneInfo("Europe/Moscow")
CHISINAU = ZoneInfo("Europe/Chisinau")  # has daylight saving time
UTC = dt.UTC


def test_daily_period_bounds_in_provider_time() -> None:
    p = Period("daily", dt.date(2026, 11, 21), MSK)
    assert p.key == "2026-11-21"
    assert p.start == dt.datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    assert p.end == dt.datetime(2026, 11, 21, 21, 0, tzinfo=UTC)
    assert p.due_at(Schedule(at="02:00")) == dt.datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    assert p.due_at(Schedule(at="02:00", delay_days=2)) == dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


def test_days_around_daylight_saving_changes_are_23_and_25_hours() -> None:
    spring = Period("daily", dt.date(2026, 3, 29), CHISINAU)
    autumn = Period("daily", dt.date(2026, 10, 25), CHISINAU)
    assert spring.end - spring.start == dt.timedelta(hours=23)
    assert autumn.end - autumn.start == dt.timedelta(hours=25)
    assert spring.previous().end == spring.start and autumn.previous().end == autumn.start


def test_monthly_periods_roll_over_the_year() -> None:
    dec = parse_period("monthly", "2026-12", MSK)
    assert (
        dec.key == "2026-12" and dec.next_first == dt.date(2027, 1, 1) and dec.last == dt.date(2026, 12, 31)
    )
    assert parse_period("monthly", "2026-12-17", MSK) == dec
    assert dec.previous().key == "2026-11"
    assert dec.due_at(Schedule(at="03:30", day_of_month=5)) == dt.datetime(2027, 1, 5, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-13-01", "yesterday", "2026-11", "21.11.2026"])
def test_bad_daily_dates_are_refused(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period("daily", text, MSK)


def test_due_periods_latest_first_bounded_by_catch_up_and_creation() -> None:
    sched = Schedule(at="02:00", catch_up=3)
    now = dt.datetime(2026, 11, 22, 0, 30, tzinfo=UTC)  # 03:30 in Moscow: the 21st is due since 02:00
    long_ago = dt.datetime(2026, 1, 1, tzinfo=UTC)
    keys = [p.key for p in due_periods("daily", sched, MSK, now, long_ago)]
    assert keys == ["2026-11-21", "2026-11-20", "2026-11-19"]
    before_two = dt.datetime(2026, 11, 21, 22, 30, tzinfo=UTC)  # 01:30 on the 22nd in Moscow
    assert due_periods("daily", sched, MSK, before_two, long_ago)[0].key == "2026-11-20"
    created = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # nothing before the template existed
    assert [p.key for p in due_periods("daily", sched, MSK, now, created)] == ["2026-11-21", "2026-11-20"]
    monthly = due_periods("monthly", Schedule(day_of_month=2, catch_up=2), MSK, now, long_ago)
    assert [p.key for p in monthly] == ["2026-10", "2026-09"]


def test_patterns_render_dates_and_refuse_attribute_access() -> None:
    values = {"provider": "acme", "date": dt.date(2026, 11, 21), "ext": "dbf", "rows": 7}
    assert render("{provider}_{date:%Y%m%d}.{ext}", values) == "acme_20261121.dbf"
    assert render("{rows:05d}", values) == "00007"
    for bad in ("{date.year}", "{provider[0]}", "{provider!r}", "{nope}", "{date:%Y", "{rows:%Y%m}"):
        with pytest.raises(PatternError):
            render(bad, values)
    with pytest.raises(PatternError):
        compile_line("{id.__class__}", {"id"})
    assert safe_file_name("../etc/pass:wd") == "_etc_pass_wd"
    with pytest.raises(PatternError):
        safe_file_name("..")
