"""The recurring module's business rules for the channel API: customers, templates, subscriptions,
their state changes and pushed events. Services never commit: the route does.

A customer is addressed by its agent and the agent's own reference; every channel of that agent
sees the same customers (omnichannel), a channel of another agent sees none (404). Every write is
idempotent: a creation by its key (the same key and body again answer the same resource, the same
key with another body is a 409), a state change by its target state (pausing a paused subscription
answers it as it is).

The key of a creation is compared with the resource as it is now: replaying a creation after the
resource was changed is a 409 too (the key is taken; GET the resource).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.fields import catalog_pattern
from paymux.catalog.snapshot import ChannelView, ServiceView, Snapshot
from paymux.errors import Problem, invalid, not_found
from paymux.money import MoneyError, check_currency, format_amount, parse_amount
from paymux.payments.models import Payment
from paymux.recurring import planning
from paymux.recurring.models import Customer, Event, Run, Subscription, Template
from paymux.recurring.schedule import Rule, RuleError, parse_time_of_day, zone
from paymux.recurring.schemas import (
    FIRST_DATE,
    LAST_DATE,
    CustomerIn,
    CustomerOut,
    EventIn,
    EventOut,
    RunAdminOut,
    RunOut,
    SubscriptionChange,
    SubscriptionIn,
    SubscriptionOut,
    TemplateChange,
    TemplateIn,
    TemplateOut,
)

DEFAULT_QUIET_SECONDS = 86_400
DEFAULT_TIME_OF_DAY = "09:00"
LIVE = ("active", "paused")  # statuses a subscription can still change from


def conflict(slug: str, detail: str) -> Problem:
    return Problem(409, slug, "Conflict", detail)


def agent_of(channel: ChannelView) -> int:
    """The agent whose customers the channel serves; a 403 problem for a channel of no agent."""
    if channel.agent_id is None:
        raise Problem(
            403,
            "channel-without-agent",
            "Channel has no agent",
            f"channel {channel.code} belongs to no agent, and recurring payments are an agent's customers'"
            " (ask the operator to give the channel its agent)",
        )
    return channel.agent_id


def _amount(text: str | None, currency: str, what: str, *, allow_zero: bool = False) -> int | None:
    if text is None:
        return None
    try:
        return parse_amount(text, currency, allow_zero=allow_zero)
    except MoneyError as e:
        raise invalid("invalid-amount", f"{what}: {e}") from None


def _money(minor: int | None, currency: str) -> str | None:
    return None if minor is None else format_amount(minor, currency)


# --- customers -------------------------------------------------------------------------------------------


async def find_customer(session: AsyncSession, agent_id: int, reference: str) -> Customer | None:
    return await session.scalar(
        select(Customer).where(Customer.agent_id == agent_id, Customer.reference == reference)
    )


async def get_customer(session: AsyncSession, agent_id: int, reference: str) -> Customer:
    customer = await find_customer(session, agent_id, reference)
    if customer is None:
        raise not_found(f"customer {reference!r} (create it with PUT first)")
    return customer


async def put_customer(
    session: AsyncSession, agent_id: int, reference: str, body: CustomerIn, now: dt.datetime | None = None
) -> tuple[Customer, bool]:
    """Create the customer or change the fields ``body`` gives; (customer, created).

    A new timezone moves the next charge of the customer's active calendar subscriptions to the new
    wall clock (those already due keep their time: the scheduler takes them as they are)."""
    given = body.model_fields_set
    customer = await find_customer(session, agent_id, reference)
    created = customer is None
    for name in ("language", "timezone", "currency", "reminders"):
        if name in given and getattr(body, name) is None:
            raise invalid("invalid-customer", f"{name} cannot be null")
    if body.timezone is not None:
        try:
            zone(body.timezone)
        except RuleError as e:
            raise invalid("invalid-timezone", str(e)) from None
    if body.currency is not None:
        try:
            check_currency(body.currency)
        except MoneyError as e:
            raise invalid("invalid-currency", str(e)) from None
    if customer is None:
        if body.currency is None:
            raise invalid("invalid-customer", "currency is needed to create a customer")
        customer = Customer(
            agent_id=agent_id, reference=reference, currency=body.currency, language="en", timezone="UTC"
        )
        customer.reminders = True
    elif (
        body.currency is not None and body.currency != customer.currency and customer.month_limit is not None
    ):
        if "month_limit" not in given:
            raise invalid("invalid-customer", "changing the currency needs the month_limit in the new one")
    currency = body.currency or customer.currency
    values: dict[str, Any] = {}
    for name in (
        "name",
        "phone",
        "email",
        "language",
        "timezone",
        "currency",
        "funding_account",
        "reminders",
    ):
        if name in given:
            values[name] = getattr(body, name)
    if "month_limit" in given:
        values["month_limit"] = _amount(body.month_limit, currency, "month_limit")
    moved = not created and "timezone" in values and values["timezone"] != customer.timezone
    for name, value in values.items():
        if getattr(customer, name, None) != value:
            setattr(customer, name, value)
    if created:
        session.add(customer)
    elif moved:
        await _follow_timezone(session, customer, now or dt.datetime.now(dt.UTC))
    await session.flush()
    return customer, created


async def _follow_timezone(session: AsyncSession, customer: Customer, now: dt.datetime) -> None:
    subs = (
        await session.scalars(
            select(Subscription).where(
                Subscription.customer_id == customer.id,
                Subscription.status == "active",
                Subscription.kind != "threshold",
                Subscription.next_due_at > now,
            )
        )
    ).all()
    for sub in subs:
        sub.next_due_at = _look(sub, customer, now)
        if sub.next_due_at is None:
            sub.status, sub.status_reason = "finished", "the schedule has no charge left"


def customer_out(c: Customer) -> CustomerOut:
    return CustomerOut(
        reference=c.reference,
        name=c.name,
        phone=c.phone,
        email=c.email,
        language=c.language,
        timezone=c.timezone,
        currency=c.currency,
        month_limit=_money(c.month_limit, c.currency),
        funding_account=c.funding_account,
        reminders=c.reminders,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


# --- templates -------------------------------------------------------------------------------------------


def _service(snap: Snapshot, code: str) -> ServiceView:
    service = snap.services.get(code)
    if service is None:
        raise invalid("unknown-service", f"service {code!r} does not exist")
    if not service.enabled:
        raise invalid("service-disabled", f"service {code!r} is disabled")
    return service


def _check_amount(service: ServiceView, amount: int, what: str = "amount") -> None:
    cur = service.currency
    if service.min_amount is not None and amount < service.min_amount:
        raise invalid(
            "amount-out-of-limits",
            f"{what} {format_amount(amount, cur)} is below the service's minimum "
            f"{format_amount(service.min_amount, cur)} {cur}",
        )
    if service.max_amount is not None and amount > service.max_amount:
        raise invalid(
            "amount-out-of-limits",
            f"{what} {format_amount(amount, cur)} is above the service's maximum "
            f"{format_amount(service.max_amount, cur)} {cur}",
        )


def _check_payment(service: ServiceView, account: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The account and fields as a payment of the service would need them (422 otherwise)."""
    if not service.pattern.fullmatch(account):
        raise invalid(
            "invalid-account",
            f"account {account!r} does not match the format of service {service.code}"
            f" ({service.pattern.pattern})",
        )
    known = {f["name"] for f in service.fields}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise invalid("invalid-field", f"unknown field(s) for service {service.code}: {', '.join(unknown)}")
    out: dict[str, str] = {}
    for f in service.fields:
        value = fields.get(f["name"])
        if value is None:
            if f.get("required"):
                raise invalid("invalid-field", f"field {f['name']!r} is required by service {service.code}")
            continue
        pattern = f.get("pattern")
        if pattern and catalog_pattern(pattern).fullmatch(value) is None:
            raise invalid("invalid-field", f"field {f['name']!r} does not match {pattern}")
        out[f["name"]] = value
    return out


def _template_values(
    service: ServiceView, name: str, account: str, fields: Mapping[str, str], amount: str | int | None
) -> dict[str, Any]:
    minor = amount if isinstance(amount, int) else _amount(amount, service.currency, "amount")
    if minor is not None:
        _check_amount(service, minor)
    return {
        "name": name,
        "service_id": service.id,
        "account": account,
        "fields": _check_payment(service, account, fields),
        "amount": minor,
        "currency": service.currency,
    }


async def _template_by_key(session: AsyncSession, customer: Customer, key: str) -> Template | None:
    return await session.scalar(
        select(Template).where(Template.customer_id == customer.id, Template.key == key)
    )


async def _create_template(
    session: AsyncSession, customer: Customer, key: str, values: dict[str, Any]
) -> tuple[Template, bool]:
    existing = await _template_by_key(session, customer, key)
    if existing is not None:
        same = not existing.deleted and all(getattr(existing, k) == v for k, v in values.items())
        if not same:
            raise conflict(
                "key-reused",
                f"key {key!r} already made template {existing.id}"
                + (" (deleted since)" if existing.deleted else ", which differs from this request"),
            )
        return existing, False
    template = Template(customer_id=customer.id, key=key, deleted=False, **values)
    session.add(template)
    await session.flush()
    return template, True


async def create_template(
    session: AsyncSession, snap: Snapshot, customer: Customer, body: TemplateIn
) -> tuple[Template, bool]:
    """A new template, or the one this key made already; (template, created)."""
    service = _service(snap, body.service)
    values = _template_values(service, body.name, body.account, body.fields, body.amount)
    return await _create_template(session, customer, body.key, values)


async def template_from_payment(
    session: AsyncSession,
    snap: Snapshot,
    channel: ChannelView,
    customer: Customer,
    payment_id: int,
    key: str,
    name: str | None,
) -> tuple[Template, bool]:
    """Save a one-off payment of the channel as the customer's template (its amount included)."""
    payment = await session.get(Payment, payment_id)
    if payment is None or payment.channel_id != channel.id:
        raise not_found(f"payment {payment_id}")
    service = snap.services_by_id.get(payment.service_id)
    if service is None:
        raise invalid("unknown-service", f"the service of payment {payment_id} no longer exists")
    fields = {str(k): str(v) for k, v in (payment.fields or {}).items()}
    values = {
        "name": name or service.name[:100],
        "service_id": service.id,
        "account": payment.account,
        "fields": fields,
        "amount": payment.amount,
        "currency": payment.currency,
    }
    return await _create_template(session, customer, key, values)


async def list_templates(session: AsyncSession, customer: Customer) -> Sequence[Template]:
    return (
        await session.scalars(
            select(Template)
            .where(Template.customer_id == customer.id, Template.deleted.is_(False))
            .order_by(Template.id)
        )
    ).all()


async def get_template(session: AsyncSession, customer: Customer, template_id: int) -> Template:
    template = await session.get(Template, template_id)
    if template is None or template.customer_id != customer.id or template.deleted:
        raise not_found(f"template {template_id}")
    return template


async def change_template(
    session: AsyncSession, snap: Snapshot, customer: Customer, template_id: int, body: TemplateChange
) -> Template:
    template = await get_template(session, customer, template_id)
    service = snap.services_by_id.get(template.service_id)
    if service is None:
        raise invalid("unknown-service", "the template's service no longer exists")
    given = body.model_fields_set
    for name in ("name", "account", "fields"):
        if name in given and getattr(body, name) is None:
            raise invalid("invalid-template", f"{name} cannot be null")
    values = _template_values(
        service,
        body.name if body.name is not None else template.name,
        body.account if body.account is not None else template.account,
        body.fields if body.fields is not None else template.fields,
        body.amount if "amount" in given else template.amount,
    )
    for k, v in values.items():
        if getattr(template, k) != v:
            setattr(template, k, v)
    await session.flush()
    return template


async def delete_template(session: AsyncSession, customer: Customer, template_id: int) -> None:
    """Soft delete (again: nothing more); 409 while a live subscription pays with it."""
    template = await session.get(Template, template_id)
    if template is None or template.customer_id != customer.id:
        raise not_found(f"template {template_id}")
    if template.deleted:
        return
    live = await session.scalar(
        select(Subscription.id)
        .where(Subscription.template_id == template.id, Subscription.status.in_(LIVE))
        .limit(1)
    )
    if live is not None:
        raise conflict(
            "template-in-use",
            f"template {template_id} pays subscription {live}: cancel the subscription first",
        )
    template.deleted = True
    await session.flush()


def template_out(t: Template, snap: Snapshot) -> TemplateOut:
    service = snap.services_by_id.get(t.service_id)
    return TemplateOut(
        id=t.id,
        key=t.key,
        name=t.name,
        service=service.code if service else str(t.service_id),
        account=t.account,
        fields=dict(t.fields or {}),
        amount=_money(t.amount, t.currency),
        currency=t.currency,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


# --- subscriptions ---------------------------------------------------------------------------------------

_SCHEDULE = ("period", "day_of_month", "weekday", "every_days")
_PERIOD_FIELD = {"monthly": "day_of_month", "weekly": "weekday", "days": "every_days"}
_TERMS = (
    "amount",
    "per_payment_limit",
    "period",
    "day_of_month",
    "weekday",
    "every_days",
    "time_of_day",
    "start_date",
    "end_date",
    "max_runs",
    "threshold",
    "poll_seconds",
    "quiet_seconds",
    "debt_limit",
)
_CALENDAR = (
    "period",
    "day_of_month",
    "weekday",
    "every_days",
    "time_of_day",
    "start_date",
    "end_date",
    "max_runs",
)
_DEFAULTED = ("amount", "start_date", "time_of_day")  # null: the default (compared as not given)
_MONEY_TERMS = ("amount", "per_payment_limit", "threshold", "debt_limit")


def _local_today(customer: Customer, now: dt.datetime) -> dt.date:
    today = now.astimezone(zone(customer.timezone)).date()
    return min(max(today, FIRST_DATE), LAST_DATE)


def _parse_terms(body: SubscriptionIn | SubscriptionChange, currency: str) -> dict[str, Any]:
    """The terms ``body`` gives, money parsed into minor units of ``currency``."""
    given = body.model_fields_set
    terms: dict[str, Any] = {}
    for name in _TERMS:
        if name not in given:
            continue
        value = getattr(body, name)
        if name in _MONEY_TERMS:
            value = _amount(value, currency, name, allow_zero=name == "threshold")
        terms[name] = value
    return terms


def _check_terms(kind: str, terms: dict[str, Any], customer: Customer, service: ServiceView | None) -> None:
    """A subscription's complete terms are those its kind needs and nothing contradicting them (422)."""

    def refuse(detail: str) -> Problem:
        return invalid("invalid-subscription", detail)

    def forbid(names: Sequence[str], why: str) -> None:
        extra = [n for n in names if terms.get(n) is not None]
        if extra:
            raise refuse(f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not for {why}")

    if kind == "threshold":
        forbid((*_SCHEDULE, "max_runs", "debt_limit"), "a threshold subscription (it has no calendar)")
        if terms.get("threshold") is None:
            raise refuse("a threshold subscription needs threshold (top up when the balance falls below it)")
    else:
        forbid(("threshold", "poll_seconds", "quiet_seconds"), f"a {kind} subscription")
        period = terms.get("period")
        if period is None:
            raise refuse(f"a {kind} subscription needs period (monthly, weekly or days) and its day")
        own = _PERIOD_FIELD[period]
        forbid([f for f in _PERIOD_FIELD.values() if f != own], f"a {period} schedule")
        try:
            Rule(
                period=period,
                timezone=customer.timezone,
                start_date=terms["start_date"],
                time_of_day=parse_time_of_day(terms.get("time_of_day") or DEFAULT_TIME_OF_DAY),
                day_of_month=terms.get("day_of_month"),
                weekday=terms.get("weekday"),
                every_days=terms.get("every_days"),
                end_date=terms.get("end_date"),
            )
        except RuleError as e:
            raise refuse(str(e)) from None
    if terms.get("end_date") is not None and terms["end_date"] < terms["start_date"]:
        raise refuse("end_date is before start_date")
    if kind == "debt":
        forbid(("amount",), "a debt subscription (it pays the debt the provider reports)")
    else:
        forbid(("debt_limit",), f"a {kind} subscription")
        amount = terms.get("amount")
        if amount is None:
            raise refuse(f"a {kind} subscription needs amount (its template has none)")
        if service is not None:
            _check_amount(service, amount)
        limit = terms.get("per_payment_limit")
        if limit is not None and amount > limit:
            raise refuse("amount is above per_payment_limit")
    limit = terms.get("per_payment_limit")
    if (
        kind == "debt"
        and limit is not None
        and terms.get("debt_limit") is not None
        and terms["debt_limit"] > limit
    ):
        raise refuse("debt_limit is above per_payment_limit (no run may pay more than per_payment_limit)")


def _complete(
    kind: str, terms: dict[str, Any], template: Template, customer: Customer, now: dt.datetime
) -> None:
    """Defaults: the template's amount, today's date, 09:00, a day's quiet period."""
    if kind != "debt" and terms.get("amount") is None:
        terms["amount"] = template.amount
    if terms.get("start_date") is None:
        terms["start_date"] = _local_today(customer, now)
    if terms.get("time_of_day") is None:
        terms["time_of_day"] = DEFAULT_TIME_OF_DAY
    if kind == "threshold" and "quiet_seconds" not in terms:
        terms["quiet_seconds"] = DEFAULT_QUIET_SECONDS


def _look(sub: Subscription, customer: Customer, now: dt.datetime) -> dt.datetime | None:
    return planning.first_look(sub, customer, now)


async def _live_template(session: AsyncSession, customer: Customer, template_id: int) -> Template:
    template = await session.get(Template, template_id)
    if template is None or template.customer_id != customer.id or template.deleted:
        raise invalid("unknown-template", f"the customer has no template {template_id}")
    return template


async def create_subscription(
    session: AsyncSession, snap: Snapshot, customer: Customer, body: SubscriptionIn, now: dt.datetime
) -> tuple[Subscription, bool]:
    """A new subscription (its first look set), or the one this key made already; (it, created)."""
    existing = await session.scalar(
        select(Subscription).where(Subscription.customer_id == customer.id, Subscription.key == body.key)
    )
    if existing is not None:
        template = await session.get(Template, existing.template_id)
        assert template is not None
    else:
        template = await _live_template(session, customer, body.template_id)
    service = snap.services_by_id.get(template.service_id)
    terms = _parse_terms(body, template.currency)
    if existing is not None:
        # the same creation again: compare what it asks with what the key made (defaults left out)
        asked = {k: v for k, v in terms.items() if v is not None or k not in _DEFAULTED}
        same = (
            existing.template_id == body.template_id
            and existing.kind == body.kind
            and all(getattr(existing, k) == v for k, v in asked.items())
        )
        if not same:
            raise conflict(
                "key-reused", f"key {body.key!r} already made subscription {existing.id}, which differs"
            )
        return existing, False
    _complete(body.kind, terms, template, customer, now)
    _check_terms(body.kind, terms, customer, service)
    sub = Subscription(
        customer_id=customer.id,
        template_id=template.id,
        key=body.key,
        kind=body.kind,
        status="active",
        currency=template.currency,
        runs_paid=0,
        **terms,
    )
    sub.next_due_at = _look(sub, customer, now)
    if sub.next_due_at is None:
        raise invalid("invalid-subscription", "the schedule has no charge ahead (its end date has passed)")
    session.add(sub)
    await session.flush()
    return sub, True


async def list_subscriptions(
    session: AsyncSession, customer: Customer, status: str | None = None, kind: str | None = None
) -> Sequence[Subscription]:
    q = select(Subscription).where(Subscription.customer_id == customer.id)
    if status is not None:
        q = q.where(Subscription.status == status)
    if kind is not None:
        q = q.where(Subscription.kind == kind)
    return (await session.scalars(q.order_by(Subscription.id))).all()


async def get_subscription(session: AsyncSession, customer: Customer, subscription_id: int) -> Subscription:
    sub = await session.get(Subscription, subscription_id)
    if sub is None or sub.customer_id != customer.id:
        raise not_found(f"subscription {subscription_id}")
    return sub


def _not_live(sub: Subscription, action: str) -> Problem:
    return conflict(
        "subscription-" + sub.status, f"subscription {sub.id} is {sub.status}: it cannot be {action}"
    )


async def change_subscription(
    session: AsyncSession,
    snap: Snapshot,
    customer: Customer,
    sub: Subscription,
    body: SubscriptionChange,
    now: dt.datetime,
) -> Subscription:
    """Change the amount, limits or calendar; an active one's next look is computed again from now
    when its calendar changed."""
    if sub.status not in LIVE:
        raise _not_live(sub, "changed")
    template = await session.get(Template, sub.template_id)
    assert template is not None
    changes = _parse_terms(body, sub.currency)
    if "start_date" in changes and changes["start_date"] is None:
        raise invalid("invalid-subscription", "start_date cannot be null")
    terms = {name: getattr(sub, name) for name in _TERMS}
    if "period" in changes:  # another period: the old one's day goes unless given again
        for name in _PERIOD_FIELD.values():
            terms[name] = None
    terms.update(changes)
    if terms.get("time_of_day") is None:
        terms["time_of_day"] = DEFAULT_TIME_OF_DAY
    _check_terms(sub.kind, terms, customer, snap.services_by_id.get(template.service_id))
    changed = [name for name, value in terms.items() if getattr(sub, name) != value]
    for name in changed:
        setattr(sub, name, terms[name])
    # a new calendar (or a threshold subscription's new terms) is looked at again from now; a new
    # amount or limit keeps the next charge where it is (also one that is due and not yet taken)
    again = any(name in _CALENDAR for name in changed) or (sub.kind == "threshold" and bool(changed))
    if sub.status == "active" and again:
        sub.next_due_at = _look(sub, customer, now)
        if sub.next_due_at is None:
            raise invalid(
                "invalid-subscription", "the schedule has no charge ahead (its end date has passed)"
            )
    await session.flush()
    return sub


async def pause(session: AsyncSession, sub: Subscription, reason: str | None) -> bool:
    """Active -> paused (no look until resumed); paused again: as it is. Whether it changed."""
    if sub.status == "paused":
        return False
    if sub.status != "active":
        raise _not_live(sub, "paused")
    sub.status = "paused"
    sub.status_reason = reason
    sub.next_due_at = None
    await session.flush()
    return True


async def resume(session: AsyncSession, customer: Customer, sub: Subscription, now: dt.datetime) -> bool:
    """Paused -> active, the next look computed from now: the periods of the pause are not charged."""
    if sub.status == "active":
        return False
    if sub.status != "paused":
        raise _not_live(sub, "resumed")
    sub.next_due_at = _look(sub, customer, now)
    if sub.next_due_at is None:
        sub.status = "finished"
        sub.status_reason = "the schedule has no charge left"
    else:
        sub.status = "active"
        sub.status_reason = None
    await session.flush()
    return True


async def cancel(session: AsyncSession, sub: Subscription, reason: str | None) -> bool:
    """Active or paused -> cancelled, for good; cancelled again: as it is. Whether it changed."""
    if sub.status == "cancelled":
        return False
    if sub.status != "active" and sub.status != "paused":
        raise _not_live(sub, "cancelled")
    sub.status = "cancelled"
    sub.status_reason = reason
    sub.next_due_at = None
    await session.flush()
    return True


async def due_now(session: AsyncSession, subscription_ids: Sequence[int], now: dt.datetime) -> list[int]:
    """Make active subscriptions due at ``now`` (the scheduler looks at them at once); those that
    were due later. Paused, cancelled and finished ones are left alone."""
    if not subscription_ids:
        return []
    subs = (
        await session.scalars(
            select(Subscription).where(
                Subscription.id.in_(list(subscription_ids)), Subscription.status == "active"
            )
        )
    ).all()
    changed = []
    for sub in subs:
        if sub.next_due_at is None or sub.next_due_at > now:
            sub.next_due_at = now
            changed.append(sub.id)
    await session.flush()
    return sorted(changed)


def subscription_out(
    sub: Subscription, template: Template, customer: Customer, snap: Snapshot
) -> SubscriptionOut:
    cur = sub.currency
    service = snap.services_by_id.get(template.service_id)
    local = sub.next_due_at.astimezone(zone(customer.timezone)) if sub.next_due_at is not None else None
    return SubscriptionOut(
        id=sub.id,
        key=sub.key,
        kind=sub.kind,
        status=sub.status,
        status_reason=sub.status_reason,
        template_id=sub.template_id,
        service=service.code if service else str(template.service_id),
        account=template.account,
        currency=cur,
        amount=_money(sub.amount, cur),
        per_payment_limit=_money(sub.per_payment_limit, cur),
        period=sub.period,
        day_of_month=sub.day_of_month,
        weekday=sub.weekday,
        every_days=sub.every_days,
        time_of_day=sub.time_of_day,
        start_date=sub.start_date,
        end_date=sub.end_date,
        max_runs=sub.max_runs,
        runs_paid=sub.runs_paid,
        threshold=_money(sub.threshold, cur),
        poll_seconds=sub.poll_seconds,
        quiet_seconds=sub.quiet_seconds,
        last_topup_at=sub.last_topup_at,
        debt_limit=_money(sub.debt_limit, cur),
        timezone=customer.timezone,
        next_due_at=sub.next_due_at,
        next_due_local=local,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


async def subscriptions_out(
    session: AsyncSession, subs: Sequence[Subscription], customer: Customer, snap: Snapshot
) -> list[SubscriptionOut]:
    ids = {s.template_id for s in subs}
    templates = (
        {t.id: t for t in (await session.scalars(select(Template).where(Template.id.in_(ids)))).all()}
        if ids
        else {}
    )
    return [subscription_out(s, templates[s.template_id], customer, snap) for s in subs]


# --- runs ------------------------------------------------------------------------------------------------


@dataclass
class RunPageRows:
    rows: Sequence[Run]
    next_before_id: int | None


async def runs_page(
    session: AsyncSession, sub: Subscription, limit: int, before_id: int | None
) -> RunPageRows:
    """A subscription's runs, newest first, ``limit`` at a time (``before_id``: after the last page)."""
    q = select(Run).where(Run.subscription_id == sub.id)
    if before_id is not None:
        q = q.where(Run.id < before_id)
    rows = (await session.scalars(q.order_by(Run.id.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return RunPageRows(rows, rows[-1].id if more and rows else None)


def run_out(r: Run) -> RunOut:
    return RunOut(
        id=r.id,
        period_key=r.period_key,
        scheduled_at=r.scheduled_at,
        state=r.state,
        currency=r.currency,
        amount=_money(r.amount, r.currency),
        observed=_money(r.observed, r.currency),
        payment_id=r.payment_id,
        error_code=r.error_code,
        error_message=r.error_message,
        created_at=r.created_at,
        final_at=r.final_at,
    )


def run_admin_out(r: Run) -> RunAdminOut:
    return RunAdminOut(
        **run_out(r).model_dump(),
        debit_key=r.debit_key,
        debit_reference=r.debit_reference,
        refund_key=r.refund_key,
        refund_reference=r.refund_reference,
        status=r.status,
        attempts=r.attempts,
    )


# --- events ----------------------------------------------------------------------------------------------


def parse_value(text: str, currency: str, kind: str) -> int:
    """An event's value in minor units: a balance may be negative (``-5.00``), a debt may not."""
    negative = text.startswith("-") and kind == "balance"
    minor = _amount(text[1:] if negative else text, currency, "value", allow_zero=True)
    assert minor is not None
    return -minor if negative else minor


async def record_event(
    session: AsyncSession, snap: Snapshot, agent_id: int, body: EventIn, now: dt.datetime
) -> tuple[Event, bool, list[int]]:
    """Store a pushed balance or debt (idempotent by key); a balance below a threshold subscription's
    threshold on that service and account makes the subscription due now. (event, created, due ids)."""
    service = snap.services.get(body.service)
    if service is None:
        raise invalid("unknown-service", f"service {body.service!r} does not exist")
    if body.currency != service.currency:
        raise invalid(
            "wrong-currency", f"service {service.code} is paid in {service.currency}, not {body.currency}"
        )
    value = parse_value(body.value, service.currency, body.kind)
    existing = await session.scalar(select(Event).where(Event.agent_id == agent_id, Event.key == body.key))
    if existing is not None:
        same = (
            existing.kind == body.kind
            and existing.service_id == service.id
            and existing.account == body.account
            and existing.value == value
            and existing.currency == body.currency
        )
        if not same:
            raise conflict("key-reused", f"key {body.key!r} already sent event {existing.id}, which differs")
        return existing, False, []
    event = Event(
        agent_id=agent_id,
        key=body.key,
        kind=body.kind,
        service_id=service.id,
        account=body.account,
        value=value,
        currency=body.currency,
        received_at=now,
    )
    session.add(event)
    await session.flush()
    due: list[int] = []
    if body.kind == "balance":
        due = await due_now(session, await low_threshold_subscriptions(session, event, now), now)
    return event, True, due


async def low_threshold_subscriptions(session: AsyncSession, event: Event, now: dt.datetime) -> list[int]:
    """Active threshold subscriptions of the event's agent, service and account whose threshold the
    balance is below and whose quiet period is over."""
    rows = (
        await session.execute(
            select(Subscription)
            .join(Template, Template.id == Subscription.template_id)
            .join(Customer, Customer.id == Subscription.customer_id)
            .where(
                Customer.agent_id == event.agent_id,
                Template.service_id == event.service_id,
                Template.account == event.account,
                Template.deleted.is_(False),
                Subscription.kind == "threshold",
                Subscription.status == "active",
                Subscription.currency == event.currency,
            )
        )
    ).scalars()
    found = []
    for sub in rows:
        if sub.threshold is None or event.value >= sub.threshold:
            continue
        quiet = dt.timedelta(seconds=sub.quiet_seconds or 0)
        if sub.last_topup_at is not None and sub.last_topup_at + quiet > now:
            continue
        found.append(sub.id)
    return found


def event_out(e: Event, snap: Snapshot, due: Sequence[int] = ()) -> EventOut:
    service = snap.services_by_id.get(e.service_id)
    return EventOut(
        id=e.id,
        key=e.key,
        kind=e.kind,
        service=service.code if service else str(e.service_id),
        account=e.account,
        value=format_amount(e.value, e.currency),
        currency=e.currency,
        received_at=e.received_at,
        processed_at=e.processed_at,
        due_subscriptions=list(due),
    )
