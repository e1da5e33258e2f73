"""What the back office's Recurring dashboard counts: subscriptions by kind, runs by outcome, the
charges coming in the next days. Read-only queries; an agent's users see their agent's customers only
(``agent_id``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.recurring.models import KINDS, Customer, Run, Subscription
from paymux.recurring.planning import rule_of
from paymux.recurring.schedule import RuleError

# the upcoming-charges chart expands at most this many subscriptions' calendars (the busiest days of a
# very large book are still counted by their next charge: see upcoming_by_day)
EXPAND_LIMIT = 20_000
FAILED_STATES = ("failed", "refunded")  # final runs that charged nothing in the end


def in_scope(agent_id: int | None) -> ColumnElement[bool]:
    """Customers of ``agent_id`` (every customer when None)."""
    return true() if agent_id is None else Customer.agent_id == agent_id


async def active_by_kind(session: AsyncSession, agent_id: int | None) -> dict[str, int]:
    """Active subscriptions per kind (every kind present, zeros included)."""
    stmt = (
        select(Subscription.kind, func.count())
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(Subscription.status == "active")
        .group_by(Subscription.kind)
    )
    counts = {k: int(n) for k, n in (await session.execute(stmt.where(in_scope(agent_id)))).all()}
    return {k: counts.get(k, 0) for k in KINDS}


async def runs_by_state(session: AsyncSession, agent_id: int | None, since: dt.datetime) -> dict[str, int]:
    """Runs created since ``since`` per business state."""
    stmt = (
        select(Run.state, func.count())
        .join(Subscription, Subscription.id == Run.subscription_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(Run.created_at >= since)
        .group_by(Run.state)
    )
    return {s: int(n) for s, n in (await session.execute(stmt.where(in_scope(agent_id)))).all()}


@dataclass
class Upcoming:
    days: list[dt.date]  # every day of the period, in the viewer's timezone
    counts: dict[str, list[int]]  # kind -> charges per day
    amounts: dict[str, list[int]]  # currency -> known amounts per day (minor units; debt unknown)


async def upcoming_by_day(
    session: AsyncSession, agent_id: int | None, start: dt.datetime, days: int, tz: dt.tzinfo
) -> Upcoming:
    """Charges of active scheduled and debt subscriptions in ``days`` days from ``start`` (a local
    midnight), per local day of the viewer: each subscription's calendar is expanded over the period.
    Threshold subscriptions charge on events and are not forecast."""
    end = start + dt.timedelta(days=days)
    local_days = [(start.astimezone(tz) + dt.timedelta(days=i)).date() for i in range(days)]
    index = {d: i for i, d in enumerate(local_days)}
    counts: dict[str, list[int]] = {k: [0] * days for k in KINDS if k != "threshold"}
    amounts: dict[str, list[int]] = {}
    stmt = (
        select(Subscription, Customer)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(
            Subscription.status == "active",
            Subscription.kind != "threshold",
            Subscription.next_due_at.is_not(None),
            Subscription.next_due_at < end,
        )
        .order_by(Subscription.next_due_at)
        .limit(EXPAND_LIMIT)
    )
    for sub, customer in (await session.execute(stmt.where(in_scope(agent_id)))).all():
        try:
            rule = rule_of(sub, customer)
        except RuleError:
            continue
        if rule is None:
            continue
        first = sub.next_due_at
        assert first is not None
        left = None if sub.max_runs is None else max(sub.max_runs - sub.runs_paid, 0)
        for n, occ in enumerate(rule.between(max(first, start) - dt.timedelta(microseconds=1), end)):
            if left is not None and n >= left:
                break
            i = index.get(occ.at.astimezone(tz).date())
            if i is None:
                continue
            counts[sub.kind][i] += 1
            if sub.amount is not None:
                amounts.setdefault(sub.currency, [0] * days)[i] += sub.amount
    return Upcoming(local_days, counts, amounts)


async def failed_runs_count(session: AsyncSession, agent_id: int | None) -> int:
    """Final runs that charged nothing because something went wrong (a support queue)."""
    stmt = (
        select(func.count())
        .select_from(Run)
        .join(Subscription, Subscription.id == Run.subscription_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(Run.state.in_(FAILED_STATES))
    )
    return int(await session.scalar(stmt.where(in_scope(agent_id))) or 0)
