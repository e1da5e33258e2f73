"""From a subscription's columns to its schedule and its next look (shared by the API and the engine)."""

from __future__ import annotations

import datetime as dt

from paymux.recurring.models import Customer, Subscription
from paymux.recurring.schedule import Occurrence, Rule, parse_time_of_day


def rule_of(sub: Subscription, customer: Customer) -> Rule | None:
    """The calendar of a scheduled or debt subscription (None for a threshold one, which polls)."""
    if sub.kind == "threshold" or sub.period is None:
        return None
    return Rule(
        period=sub.period,
        timezone=customer.timezone,
        start_date=sub.start_date,
        time_of_day=parse_time_of_day(sub.time_of_day),
        day_of_month=sub.day_of_month,
        weekday=sub.weekday,
        every_days=sub.every_days,
        end_date=sub.end_date,
    )


def next_charge(sub: Subscription, customer: Customer, after: dt.datetime) -> Occurrence | None:
    """The subscription's first calendar charge strictly after ``after`` (None: none left)."""
    rule = rule_of(sub, customer)
    if rule is None:
        return None
    if sub.max_runs is not None and sub.runs_paid >= sub.max_runs:
        return None
    return rule.next_after(after)


def first_look(sub: Subscription, customer: Customer, now: dt.datetime) -> dt.datetime | None:
    """When the scheduler should first look at a subscription made (or resumed) at ``now``:
    the next calendar charge, or now for a threshold subscription (poll at once)."""
    if sub.kind == "threshold":
        return now
    occ = next_charge(sub, customer, now)
    return occ.at if occ else None
