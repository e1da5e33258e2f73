"""Schedule math of scheduled subscriptions: month ends, 29 February, weekdays, every N days, DST."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymux.recurring.schedule import Rule, RuleError, parse_time_of_day

ZONES = ["UTC", "Europe/Chisinau", "Europe/Moscow", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

rules = st.one_of(
    st.builds(
        Rule,
        period=st.just("monthly"),
        timezone=st.sampled_from(ZONES),
        start_date=st.dates(dt.date(2023, 1, 1), dt.date(2029, 12, 31)),
        time_of_day=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
        day_of_month=st.integers(1, 31),
    ),
    st.builds(
        Rule,
        period=st.just("weekly"),
        timezone=st.sampled_from(ZONES),
        start_date=st.dates(dt.date(2023, 1, 1), dt.date(2029, 12, 31)),
        time_of_day=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
        weekday=st.integers(0, 6),
    ),
    st.builds(
        Rule,
        period=st.just("days"),
        timezone=st.sampled_from(ZONES),
        start_date=st.dates(dt.date(2023, 1, 1), dt.date(2029, 12, 31)),
        time_of_day=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
        every_days=st.integers(1, 45),
    ),
)
instants = st.datetimes(dt.datetime(2022, 6, 1), dt.datetime(2030, 6, 1)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)


def _matches(rule: Rule, day: dt.date) -> bool:
    if day < rule.start_date or (rule.end_date and day > rule.end_date):
        return False
    if rule.period == "monthly":
        assert rule.day_of_month
        return day.day == min(rule.day_of_month, calendar.monthrange(day.year, day.month)[1])
    if rule.period == "weekly":
        return day.weekday() == rule.weekday
    assert rule.every_days
    return (day - rule.start_date).days % rule.every_days == 0


@settings(max_examples=300, deadline=None)
@given(rule=rules, after=instants)
def test_next_is_the_first_matching_day_after(rule: Rule, after: dt.datetime) -> None:
    occ = rule.next_after(after)
    assert occ is not None and occ.at > after
    assert _matches(rule, occ.date) and occ.at == rule.at(occ.date)
    # no matching day between: brute force day by day
    day = after.astimezone(ZoneInfo(rule.timezone)).date() - dt.timedelta(days=1)
    while day < occ.date:
        assert not (_matches(rule, day) and rule.at(day) > after), day
        day += dt.timedelta(days=1)


@settings(max_examples=200, deadline=None)
@given(rule=rules, after=instants)
def test_occurrences_strictly_increase_with_unique_period_keys(rule: Rule, after: dt.datetime) -> None:
    occs = rule.between(after, after + dt.timedelta(days=400))
    keys = [o.period_key for o in occs]
    assert len(set(keys)) == len(keys)
    assert all(a.at < b.at for a, b in itertools.pairwise(occs))
    # the wall clock shows the time of day, or as much later as a skipped hour (spring forward)
    tz = ZoneInfo(rule.timezone)
    for o in occs:
        wall = o.at.astimezone(tz)
        wanted = dt.datetime.combine(o.date, rule.time_of_day)
        assert dt.timedelta(0) <= wall.replace(tzinfo=None) - wanted <= dt.timedelta(hours=1)


@settings(max_examples=100, deadline=None)
@given(day=st.integers(1, 31), year=st.integers(2023, 2032), tz=st.sampled_from(ZONES))
def test_monthly_charges_once_a_month_on_the_day_or_the_months_last(day: int, year: int, tz: str) -> None:
    rule = Rule("monthly", tz, dt.date(year, 1, 1), day_of_month=day)
    occs = rule.between(rule.at(dt.date(year, 1, 1)) - dt.timedelta(days=2), rule.at(dt.date(year, 12, 31)))
    assert [o.date.month for o in occs] == list(range(1, 13))
    for o in occs:
        assert o.date.day == min(day, calendar.monthrange(year, o.date.month)[1])


def test_29_february_and_day_31() -> None:
    start = dt.date(2027, 1, 1)
    r29 = Rule("monthly", "UTC", start, day_of_month=29)
    r31 = Rule("monthly", "UTC", start, day_of_month=31)
    feb = dt.datetime(2027, 2, 1, tzinfo=dt.UTC)
    assert r29.next_after(feb).date == dt.date(2027, 2, 28)  # type: ignore[union-attr]
    assert r31.next_after(feb).date == dt.date(2027, 2, 28)  # type: ignore[union-attr]
    leap = dt.datetime(2028, 2, 1, tzinfo=dt.UTC)
    assert r29.next_after(leap).date == dt.date(2028, 2, 29)  # type: ignore[union-attr]
    assert r31.next_after(dt.datetime(2027, 4, 1, tzinfo=dt.UTC)).date == dt.date(2027, 4, 30)  # type: ignore[union-attr]


def test_dst_gap_runs_later_and_overlap_runs_once() -> None:
    # Chisinau: 2027-03-28 02:00 -> 03:00 (skipped), 2027-10-31 03:00 -> 02:00 (twice)
    gap = Rule("days", "Europe/Chisinau", dt.date(2027, 3, 27), time_of_day=dt.time(2, 30), every_days=1)
    occs = gap.between(dt.datetime(2027, 3, 26, tzinfo=dt.UTC), dt.datetime(2027, 3, 29, 12, tzinfo=dt.UTC))
    walls = [o.at.astimezone(ZoneInfo("Europe/Chisinau")).strftime("%m-%d %H:%M") for o in occs]
    assert walls == ["03-27 02:30", "03-28 03:30", "03-29 02:30"]
    twice = Rule("days", "Europe/Chisinau", dt.date(2027, 10, 30), time_of_day=dt.time(2, 30), every_days=1)
    occs = twice.between(dt.datetime(2027, 10, 29, tzinfo=dt.UTC), dt.datetime(2027, 11, 2, tzinfo=dt.UTC))
    assert [o.period_key for o in occs] == ["2027-10-30", "2027-10-31", "2027-11-01"]
    assert occs[1].at == dt.datetime(2027, 10, 30, 23, 30, tzinfo=dt.UTC)  # the first 02:30 (EEST)


def test_end_date_and_start_date_bound_the_schedule() -> None:
    rule = Rule("weekly", "UTC", dt.date(2027, 1, 1), weekday=0, end_date=dt.date(2027, 1, 31))
    occs = rule.between(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
    assert [o.date.day for o in occs] == [4, 11, 18, 25]
    assert rule.next_after(dt.datetime(2027, 1, 26, tzinfo=dt.UTC)) is None


def test_catch_up_runs_the_latest_missed_charge_once() -> None:
    rule = Rule("days", "UTC", dt.date(2027, 1, 1), every_days=1)
    last = rule.at(dt.date(2027, 1, 3))
    latest = rule.latest_due(last, dt.datetime(2027, 1, 7, 12, tzinfo=dt.UTC))
    assert latest is not None and latest.period_key == "2027-01-07"
    assert rule.latest_due(last, dt.datetime(2027, 1, 3, 10, tzinfo=dt.UTC)) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"period": "monthly", "day_of_month": 0},
        {"period": "monthly", "day_of_month": 32},
        {"period": "weekly", "weekday": 7},
        {"period": "days", "every_days": 0},
        {"period": "yearly"},
        {"period": "days", "every_days": 1, "timezone": "Mars/Olympus"},
        {"period": "days", "every_days": 1, "timezone": "../../etc/passwd"},
        {"period": "days", "every_days": 1, "end_date": dt.date(2026, 1, 1)},
    ],
)
def test_impossible_rules_are_refused(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"timezone": "UTC", "start_date": dt.date(2027, 1, 1)}
    with pytest.raises(RuleError):
        Rule(**(base | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["9:00", "24:00", "12:60", "ab:cd", "１２:００", "12-00", ""])
def test_time_of_day_is_hh_mm(text: str) -> None:
    with pytest.raises(RuleError):
        parse_time_of_day(text)
    assert parse_time_of_day("23:59") == dt.time(23, 59)
