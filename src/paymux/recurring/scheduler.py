"""The scheduler: from subscriptions that fell due to runs, one per (subscription, period).

Each batch is one transaction: it claims active subscriptions whose ``next_due_at`` has come
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the work; SQLite has one writer),
inserts the run of the period (unique per subscription and period key: a run already there is left
alone) and advances ``next_due_at``. A crash before the commit leaves both as they were; after it,
both are done: a period is never run twice and never lost.

- *scheduled* and *debt*: of the calendar charges that fell due since ``next_due_at`` only the latest
  is run, once, late (:meth:`~paymux.recurring.schedule.Rule.latest_due`); when even that one is
  older than the agent's ``catch_up_hours`` it is recorded as a ``skipped`` run and the customer is
  told (``run.skipped``). A scheduled run is ``due`` with the subscription's amount; a debt run starts
  ``checking`` (the executor asks the provider for the debt).
- *threshold*: a look every ``poll_seconds``; each look is a run (period key ``t<UTC instant>``) that
  starts ``checking`` the balance. A look is not made while the previous one is still in flight, so
  two top-ups can never overlap; looks that needed nothing are deleted after
  ``not_needed_keep_days`` (:func:`prune`).
- ``max_runs`` counts paid runs: while runs in flight could reach it the subscription waits for
  them; ``end_date`` (or the count) reached: the subscription is ``finished``.

``charge.upcoming`` is sent ``upcoming_lead_hours`` before a scheduled charge, once per period
(``upcoming_noticed_for`` holds the period noticed; it is cleared when ``next_due_at`` moves on, and
a key older than the coming periods, left by a pause and resume, counts as none).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.recurring import notices
from paymux.recurring.engine_settings import EngineSettings
from paymux.recurring.models import Customer, RecurringAgent, Run, Subscription, Template
from paymux.recurring.planning import rule_of
from paymux.recurring.schedule import RuleError, zone
from paymux.runtime import Hub

log = logging.getLogger(__name__)

M = TypeVar("M", Customer, Template)

IN_FLIGHT_STATUSES = ("pending", "running", "waiting")  # a run's job status while it is not final
EPSILON = dt.timedelta(microseconds=1)
RETRY_LATER = dt.timedelta(hours=1)  # a subscription that cannot be scheduled now is looked at again


@dataclass
class ScheduleResult:
    runs: int = 0  # runs created (skipped ones included)
    skipped: int = 0
    finished: int = 0
    upcoming: int = 0  # charge.upcoming notices
    pruned: int = 0


def debit_key(subscription_id: int, period_key: str) -> str:
    """The idempotency key of a run's debit: one per (subscription, period), whoever creates it."""
    return f"rec-{subscription_id}-{period_key}"


def refund_key(debit: str) -> str:
    return f"{debit}:refund"


def threshold_key(at: dt.datetime) -> str:
    return "t" + at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


async def in_flight(session: AsyncSession, subscription_id: int) -> int:
    n = await session.scalar(
        select(func.count())
        .select_from(Run)
        .where(Run.subscription_id == subscription_id, Run.status.in_(IN_FLIGHT_STATUSES))
    )
    return int(n or 0)


async def schedule_due(
    hub: Hub, now: dt.datetime | None = None, settings: EngineSettings | None = None
) -> ScheduleResult:
    """Schedule every subscription due at ``now`` (batches, one transaction each), send the upcoming
    notices that are due and prune old threshold looks. Committed."""
    settings = settings or EngineSettings()
    now = now or utcnow()
    result = ScheduleResult()
    while True:
        async with hub.sessions() as session:
            n = await _schedule_batch(session, hub, now, settings, result)
            await session.commit()
        if n < settings.batch:
            break
    while True:
        async with hub.sessions() as session:
            n = await _upcoming_batch(session, hub, now, settings, result)
            await session.commit()
        if n < settings.batch:
            break
    async with hub.sessions() as session:
        result.pruned = await prune(session, now, settings)
        await session.commit()
    return result


async def _schedule_batch(
    session: AsyncSession, hub: Hub, now: dt.datetime, settings: EngineSettings, result: ScheduleResult
) -> int:
    stmt = (
        select(Subscription)
        .where(
            Subscription.status == "active",
            Subscription.next_due_at.is_not(None),
            Subscription.next_due_at <= now,
        )
        .order_by(Subscription.next_due_at, Subscription.id)
        .limit(settings.batch)
    )
    if not hub.sqlite:
        stmt = stmt.with_for_update(skip_locked=True, of=Subscription)
    subs = list((await session.scalars(stmt)).all())
    if not subs:
        return 0
    customers = await _by_id(session, Customer, {s.customer_id for s in subs})
    templates = await _by_id(session, Template, {s.template_id for s in subs})
    agent_ids = {c.agent_id for c in customers.values()}
    agents = {
        a.agent_id: a
        for a in (await session.scalars(select(RecurringAgent).where(RecurringAgent.agent_id.in_(agent_ids))))
    }
    for sub in subs:
        customer = customers[sub.customer_id]
        agent = agents.get(customer.agent_id)
        if agent is None or not agent.enabled:
            sub.next_due_at = now + RETRY_LATER
            continue
        try:
            await _schedule_one(
                session, sub, customer, templates[sub.template_id], agent, now, settings, result
            )
        except RuleError as exc:
            log.warning("subscription %s: cannot be scheduled: %s", sub.id, exc)
            sub.status_reason = f"schedule error: {exc}"[:500]
            sub.next_due_at = now + RETRY_LATER
    await session.flush()
    return len(subs)


async def _by_id(session: AsyncSession, model: type[M], ids: set[int]) -> dict[int, M]:
    rows = (await session.scalars(select(model).where(model.id.in_(ids)))).all()
    return {r.id: r for r in rows}


async def _schedule_one(
    session: AsyncSession,
    sub: Subscription,
    customer: Customer,
    template: Template,
    agent: RecurringAgent,
    now: dt.datetime,
    settings: EngineSettings,
    result: ScheduleResult,
) -> None:
    assert sub.next_due_at is not None
    anchor = sub.next_due_at
    if sub.kind == "threshold":
        poll = dt.timedelta(seconds=max(sub.poll_seconds or 3600, 1))
        nxt = anchor + poll
        if nxt <= now:
            nxt = now + poll
        if await in_flight(session, sub.id) == 0:
            await _create_run(session, sub, threshold_key(anchor), anchor, "checking", None, now, result)
        sub.next_due_at = nxt
        return
    rule = rule_of(sub, customer)
    if rule is None:
        raise RuleError(f"a {sub.kind} subscription without a schedule")
    if sub.max_runs is not None:
        busy = await in_flight(session, sub.id)
        if sub.runs_paid + busy >= sub.max_runs:
            if busy:  # the runs in flight may end the count: look again later
                sub.next_due_at = now + RETRY_LATER
            else:
                _finish(sub, "max_runs reached", result)
            return
    occ = rule.latest_due(anchor - EPSILON, now)
    if occ is not None:
        late = now - occ.at
        state = "due" if sub.kind == "scheduled" else "checking"
        amount = sub.amount if sub.kind == "scheduled" else None
        if late > dt.timedelta(hours=agent.catch_up_hours):
            run = await _create_run(session, sub, occ.period_key, occ.at, "skipped", amount, now, result)
            if run is not None:
                result.skipped += 1
                await notices.emit(
                    session, notices.about_run("run.skipped", run, sub, customer, template, agent.agent_id)
                )
        else:
            await _create_run(session, sub, occ.period_key, occ.at, state, amount, now, result)
        after = occ.at
    else:
        after = now
    coming = rule.next_after(after)
    if coming is None:
        _finish(sub, "end date reached", result)
        return
    sub.next_due_at = coming.at
    if sub.upcoming_noticed_for != coming.period_key:
        sub.upcoming_noticed_for = None


def _finish(sub: Subscription, reason: str, result: ScheduleResult) -> None:
    sub.status = "finished"
    sub.status_reason = reason
    sub.next_due_at = None
    result.finished += 1


async def _create_run(
    session: AsyncSession,
    sub: Subscription,
    period_key: str,
    at: dt.datetime,
    state: str,
    amount: int | None,
    now: dt.datetime,
    result: ScheduleResult,
) -> Run | None:
    """Insert the run of ``period_key`` unless there is one (then None: it is left alone), in ONE
    statement (``INSERT ... ON CONFLICT DO NOTHING RETURNING id``; a run inserted at the same moment
    by another scheduler counts as there)."""
    final = state == "skipped"
    values = {
        "subscription_id": sub.id,
        "period_key": period_key,
        "scheduled_at": at,
        "state": state,
        "currency": sub.currency,
        "amount": amount,
        "debit_key": debit_key(sub.id, period_key),
        "status": "done" if final else "pending",
        "due_at": now,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "final_at": now if final else None,
        "error_code": "too_late" if final else None,
        "error_message": f"{int((now - at).total_seconds() // 3600)} h late, past the catch-up window"
        if final
        else None,
    }
    sqlite = (await session.connection()).dialect.name == "sqlite"
    dialect_insert = sqlite_insert if sqlite else pg_insert
    run_id = await session.scalar(
        dialect_insert(Run)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["subscription_id", "period_key"])
        .returning(Run.id)
    )
    if run_id is None:
        return None
    run = Run(id=run_id, **values)  # what the row holds (not added to the session: it is written)
    result.runs += 1
    return run


async def _upcoming_batch(
    session: AsyncSession, hub: Hub, now: dt.datetime, settings: EngineSettings, result: ScheduleResult
) -> int:
    max_lead = await session.scalar(select(func.max(RecurringAgent.upcoming_lead_hours)))
    if not max_lead or max_lead <= 0:
        return 0
    stmt = (
        select(Subscription)
        .where(
            Subscription.kind == "scheduled",
            Subscription.status == "active",
            # not noticed for a coming period yet; a key older than the coming periods is stale (a
            # subscription resumed or changed since); the exact key is compared below
            or_(
                Subscription.upcoming_noticed_for.is_(None),
                Subscription.upcoming_noticed_for < (now - dt.timedelta(days=2)).date().isoformat(),
            ),
            Subscription.next_due_at > now,
            Subscription.next_due_at <= now + dt.timedelta(hours=int(max_lead)),
        )
        .order_by(Subscription.next_due_at, Subscription.id)
        .limit(settings.batch)
    )
    if not hub.sqlite:
        stmt = stmt.with_for_update(skip_locked=True, of=Subscription)
    subs = list((await session.scalars(stmt)).all())
    noticed = 0
    for sub in subs:
        customer = await session.get(Customer, sub.customer_id)
        template = await session.get(Template, sub.template_id)
        assert customer is not None and template is not None and sub.next_due_at is not None
        agent = await session.get(RecurringAgent, customer.agent_id)
        if agent is None or not agent.enabled or agent.upcoming_lead_hours <= 0:
            continue
        if sub.next_due_at - dt.timedelta(hours=agent.upcoming_lead_hours) > now:
            continue
        try:
            key = sub.next_due_at.astimezone(zone(customer.timezone)).date().isoformat()
        except RuleError:
            continue
        if sub.upcoming_noticed_for == key:
            continue
        sub.upcoming_noticed_for = key
        await notices.emit(
            session, notices.upcoming(sub, customer, template, agent.agent_id, key, sub.next_due_at)
        )
        noticed += 1
    result.upcoming += noticed
    await session.flush()
    # a full batch of subscriptions not yet in their lead time is not a reason to go on
    return len(subs) if noticed else 0


async def prune(session: AsyncSession, now: dt.datetime, settings: EngineSettings) -> int:
    """Delete threshold looks that needed nothing, older than ``not_needed_keep_days`` (a batch)."""
    cutoff = now - dt.timedelta(days=settings.not_needed_keep_days)
    ids = (
        await session.scalars(
            select(Run.id)
            .where(Run.state == "not_needed", Run.period_key.like("t%"), Run.final_at < cutoff)
            .limit(1000)
        )
    ).all()
    if not ids:
        return 0
    await session.execute(delete(Run).where(Run.id.in_(ids)))
    return len(ids)
