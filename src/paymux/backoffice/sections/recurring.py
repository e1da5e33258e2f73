"""Recurring: the dashboard (subscriptions by kind, runs today, upcoming charges), customers found by
reference, phone, e-mail or account, a customer's templates and subscriptions, a subscription's runs
and the runs list (the failed-runs queue is its ``state=failed`` filter).

An agent's users see their agent's customers only.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.charts import Series, chart
from paymux.backoffice.framework import (
    OPERATIONS,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    language_of,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.backoffice.sections.ops import money_for, plain_money_for, today_start
from paymux.catalog.models import Agent, Service
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.notifications.models import Notification
from paymux.recurring import overview, reminders
from paymux.recurring.admin_service import act
from paymux.recurring.executor import RETRYABLE, retry_run
from paymux.recurring.models import (
    KINDS,
    RUN_STATES,
    SUBSCRIPTION_STATUSES,
    Customer,
    Run,
    Subscription,
    Template,
)

router = section_router()
register(
    Section(
        "recurring",
        router,
        menu=(
            MenuEntry("Recurring", "/backoffice/recurring", P.RECURRING_READ, 5, area=OPERATIONS),
            MenuEntry("Subscribers", "/backoffice/recurring/customers", P.RECURRING_READ, 6, area=OPERATIONS),
        ),
        permissions=(P.RECURRING_READ, P.RECURRING_MANAGE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.RECURRING_READ))]
Manager = Annotated[Principal, Depends(require(P.RECURRING_MANAGE))]
ACTIONS = {
    "pause": "The subscription is paused.",
    "resume": "The subscription is resumed.",
    "cancel": "The subscription is cancelled.",
}
UPCOMING_DAYS = 30
CONVERSION_DAYS = 30
NOTICES_SHOWN = 20  # a subscriber's latest notifications on their page


def _scope(me: Principal) -> ColumnElement[bool]:
    """What ``me`` may see: an agent's users, their agent's customers only."""
    return overview.in_scope((me.agent_id or -1) if me.agent_scoped else None)


@router.get("/recurring")
async def recurring_dashboard(request: Request, session: ReadDbDep, me: Reader) -> Response:
    agent = (me.agent_id or -1) if me.agent_scoped else None
    since = today_start(me.timezone)
    by_kind = await overview.active_by_kind(session, agent)
    runs_today = await overview.runs_by_state(session, agent, since)
    failed = await overview.failed_runs_count(session, agent)
    charts = await _charts(request, session, me, agent, since)
    month = await reminders.conversion(
        session, since=since - dt.timedelta(days=CONVERSION_DAYS - 1), until=utcnow(), agent_id=agent
    )
    charts.append(await _conversion_chart(request, session, me, agent, since))
    return render(
        request,
        "recurring/index.html",
        by_kind=by_kind,
        runs_today=runs_today,
        failed=failed,
        charts=charts,
        conversion=month,
        conversion_days=CONVERSION_DAYS,
        days=UPCOMING_DAYS,
    )


async def _charts(
    request: Request, session: AsyncSession, me: Principal, agent: int | None, since: dt.datetime
) -> list[Markup]:
    t = translator(language_of(request))
    tz = zone(me.timezone)
    up = await overview.upcoming_by_day(session, agent, since, UPCOMING_DAYS, tz)
    labels = [d.strftime("%d.%m") for d in up.days]
    charts = [
        chart(
            "stacked",
            t("Upcoming charges by day, next {n} days", n=UPCOMING_DAYS),
            labels,
            [Series(t(kind), values) for kind, values in up.counts.items()],
        )
    ]
    amount = plain_money_for(request)
    for currency, values in sorted(up.amounts.items()):
        charts.append(
            chart(
                "bar",
                t("Upcoming charges by day, {currency}", currency=currency),
                labels,
                [Series(t("Known amounts"), values)],
                value=functools.partial(_amount, amount, currency),
            )
        )
    return charts


async def _conversion_chart(
    request: Request, session: AsyncSession, me: Principal, agent: int | None, today: dt.datetime
) -> Markup:
    """Hidden-subscription reminders sent per local day of the last days, and what came of them."""
    t = translator(language_of(request))
    tz = zone(me.timezone)
    local_today = today.astimezone(tz).date()
    days = [local_today - dt.timedelta(days=CONVERSION_DAYS - 1 - i) for i in range(CONVERSION_DAYS)]
    per_day = []
    for day in days:
        start = dt.datetime.combine(day, dt.time(), tz).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
        per_day.append(await reminders.conversion(session, since=start, until=end, agent_id=agent))
    return chart(
        "bar",
        t("Reminders and their conversion, last {n} days", n=CONVERSION_DAYS),
        [d.strftime("%d.%m") for d in days],
        [
            Series(t("Reminders sent"), [c.sent for c in per_day]),
            Series(t("Repeated"), [c.repeated for c in per_day]),
            Series(t("Subscribed"), [c.subscribed for c in per_day]),
            Series(t("Opted out"), [c.opted_out for c in per_day]),
        ],
    )


def _amount(amount: Any, currency: str, minor: int) -> str:
    return str(amount(minor, currency))


def _account_filter(q: Select[Any], value: str) -> Select[Any]:
    owners = select(Template.customer_id).where(Template.account == value.strip())
    return q.where(Customer.id.in_(owners))


@router.get("/recurring/customers")
async def customers(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(Customer, Agent.code.label("agent"))
        .join(Agent, Agent.id == Customer.agent_id)
        .where(_scope(me)),
        columns=[
            Column("reference", "Reference", Customer.reference, lambda r: r[0].reference),
            Column("agent", "Agent", Agent.code, lambda r: r.agent),
            Column("name", "Name", Customer.name, lambda r: r[0].name),
            Column("phone", "Phone", Customer.phone, lambda r: r[0].phone),
            Column("email", "E-mail", Customer.email, lambda r: r[0].email),
            Column("language", "Language", None, lambda r: r[0].language),
            Column("timezone", "Timezone", None, lambda r: r[0].timezone),
            Column("created_at", "Created", Customer.created_at, lambda r: r[0].created_at),
        ],
        search=[Customer.reference, Customer.phone, Customer.email, Customer.name],
        filters=[Filter("account", "Account", _account_filter)],
        default_sort="created_at",
        sheet="subscribers",
    )
    return respond(request, await spec.run(session, request), "recurring/customers.html")


async def _customer(session: AsyncSession, me: Principal, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None or (me.agent_scoped and customer.agent_id != me.agent_id):
        raise PageNotFound()
    return customer


@router.get("/recurring/customers/{customer_id}")
async def customer_detail(request: Request, customer_id: Id, session: ReadDbDep, me: Reader) -> Response:
    customer = await _customer(session, me, customer_id)
    agent = await session.get(Agent, customer.agent_id)
    templates = (
        await session.execute(
            select(Template, Service.code)
            .join(Service, Service.id == Template.service_id)
            .where(Template.customer_id == customer.id)
            .order_by(Template.id)
        )
    ).all()
    subs = (
        await session.execute(
            select(Subscription, Template.name, Service.code)
            .join(Template, Template.id == Subscription.template_id)
            .join(Service, Service.id == Template.service_id)
            .where(Subscription.customer_id == customer.id)
            .order_by(Subscription.id)
        )
    ).all()
    notices = (
        await session.scalars(
            select(Notification)
            .where(Notification.agent_id == customer.agent_id, Notification.reference == customer.reference)
            .order_by(Notification.id.desc())
            .limit(NOTICES_SHOWN)
        )
    ).all()
    return render(
        request,
        "recurring/customer.html",
        notices=notices,
        customer=customer,
        agent=agent,
        templates=templates,
        subscriptions=subs,
        money=money_for(request),
    )


@router.get("/recurring/subscriptions/{subscription_id}")
async def subscription_detail(
    request: Request, subscription_id: Id, session: ReadDbDep, me: Reader
) -> Response:
    sub = await session.get(Subscription, subscription_id)
    if sub is None:
        raise PageNotFound()
    customer = await _customer(session, me, sub.customer_id)
    template = await session.get(Template, sub.template_id)
    service = await session.get(Service, template.service_id) if template else None
    spec = ListSpec(
        query=select(Run).where(Run.subscription_id == sub.id),
        columns=_run_columns(with_subscription=False),
        filters=[_state_filter()],
        default_sort="scheduled_at",
        sheet=f"subscription-{sub.id}-runs",
    )
    return respond(
        request,
        await spec.run(session, request),
        "recurring/subscription.html",
        sub=sub,
        customer=customer,
        retryable=RETRYABLE,
        saved=template,
        service=service,
        money=money_for(request),
    )


def _queue(q: Select[Any], value: str) -> Select[Any]:
    """``failed``: the runs that charged nothing in the end (failed, or refunded after the payment
    failed): the support queue, where a run can be retried."""
    return q.where(Run.state.in_(overview.FAILED_STATES)) if value == "failed" else q


def _state_filter() -> Filter:
    return Filter("state", "State", lambda q, v: q.where(Run.state == v), [(s, s) for s in RUN_STATES])


def _run_columns(*, with_subscription: bool) -> list[Column]:
    def row(r: Any) -> Run:
        return r[0] if with_subscription else r

    cols = [Column("id", "Run", Run.id, lambda r: row(r).id)]
    if with_subscription:
        cols += [
            Column("subscription", "Subscription", Run.subscription_id, lambda r: row(r).subscription_id),
            Column("customer", "Customer", Customer.reference, lambda r: r.customer),
            Column("kind", "Kind", Subscription.kind, lambda r: r.kind),
        ]
    cols += [
        Column("period_key", "Period", Run.period_key, lambda r: row(r).period_key),
        Column("scheduled_at", "Scheduled", Run.scheduled_at, lambda r: row(r).scheduled_at),
        Column("state", "State", Run.state, lambda r: row(r).state),
        Column("amount", "Amount", Run.amount, lambda r: row(r).amount),
        Column("currency", "Currency", None, lambda r: row(r).currency),
        Column("debit_reference", "Debit", None, lambda r: row(r).debit_reference),
        Column("payment_id", "Payment", Run.payment_id, lambda r: row(r).payment_id),
        Column("refund_reference", "Refund", None, lambda r: row(r).refund_reference),
        Column("error_message", "Error", None, lambda r: row(r).error_message),
        Column("final_at", "Finished", Run.final_at, lambda r: row(r).final_at),
    ]
    return cols


@router.get("/recurring/runs")
async def runs(request: Request, session: ReadDbDep, me: Reader) -> Response:
    query = (
        select(Run, Customer.reference.label("customer"), Subscription.kind.label("kind"))
        .join(Subscription, Subscription.id == Run.subscription_id)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(_scope(me))
    )
    spec = ListSpec(
        query=query,
        columns=_run_columns(with_subscription=True),
        search=[Customer.reference, Run.period_key, Run.debit_reference],
        filters=[
            Filter("queue", "Queue", _queue, [("failed", "Failed runs")]),
            _state_filter(),
            Filter("kind", "Kind", lambda q, v: q.where(Subscription.kind == v), [(k, k) for k in KINDS]),
            Filter(
                "status",
                "Subscription status",
                lambda q, v: q.where(Subscription.status == v),
                [(s, s) for s in SUBSCRIPTION_STATUSES],
            ),
        ],
        default_sort="scheduled_at",
        sheet="recurring-runs",
    )
    return respond(
        request,
        await spec.run(session, request),
        "recurring/runs.html",
        money=money_for(request),
        retryable=RETRYABLE,
    )


@router.post("/recurring/subscriptions/{subscription_id}/{action}")
async def subscription_act(
    subscription_id: Id,
    action: str,
    session: DbDep,
    me: Manager,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Pause, resume or cancel a subscription for its customer, with a reason (audited)."""
    back = f"/backoffice/recurring/subscriptions/{subscription_id}"
    if action not in ACTIONS:
        raise PageNotFound()
    sub = await session.get(Subscription, subscription_id)
    if sub is None:
        raise PageNotFound()
    await _customer(session, me, sub.customer_id)
    reason = reason.strip()
    if action != "resume" and not reason:
        return redirect(back, error="Give a reason.")
    try:
        await act(session, subscription_id, action, reason, me, utcnow())
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await session.commit()
    return redirect(back, ACTIONS[action])


@router.post("/recurring/runs/{run_id}/retry")
async def run_retry(run_id: Id, session: DbDep, me: Manager) -> Response:
    """Run a failed run again (one that debited nothing), under a new debit key; audited."""
    back = "/backoffice/recurring/runs?queue=failed"
    run = await session.get(Run, run_id)
    if run is None:
        raise PageNotFound()
    sub = await session.get(Subscription, run.subscription_id)
    assert sub is not None
    await _customer(session, me, sub.customer_id)
    before = {"state": run.state, "debit_key": run.debit_key}
    try:
        run = await retry_run(session, run_id, utcnow())
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await audit.record(
        session,
        me,
        "recurring.run.retry",
        f"run:{run.id} subscription:{sub.id}",
        before,
        {"state": run.state, "debit_key": run.debit_key},
    )
    await session.commit()
    return redirect(back, "The run will be tried again.")
