"""What the recurring engine tells the agent and the customer: the events and the data they carry.

Every notice is written in the same transaction as the state change it is about (the caller's
session; nothing here commits), under an idempotency key unique per agent (``<event>:<run or period>``),
so a run that is resumed after a crash never notifies twice.

Events: ``charge.upcoming`` (before a scheduled charge), ``run.paid``, ``run.failed`` (nothing was
debited, or the payment failed and the debit was given back), ``run.limit_exceeded``,
``run.skipped`` (too late after downtime) and ``debt.confirm`` (a debt above the customer's limit:
actions ``confirm`` and ``decline``).

Delivery is :func:`paymux.notifications.service.notify` (webhook to the agent, SMS and e-mail to the
customer, from the templates of :mod:`paymux.notifications.templates`). The data carries what those
templates show: ``service`` (its name), ``account``, ``amount`` (minor units) and ``currency``, and per
event ``due_at`` (upcoming, skipped), ``paid_at`` (paid), ``reason`` (failed, skipped, limit),
``limit`` (limit exceeded, debt to confirm); plus the run's ids, period and state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Service
from paymux.notifications.service import Action, Recipient, notify
from paymux.recurring.models import Customer, Run, Subscription, Template

EVENTS = ("charge.upcoming", "run.paid", "run.failed", "run.limit_exceeded", "run.skipped", "debt.confirm")


@dataclass(frozen=True)
class Notice:
    event: str
    agent_id: int
    key: str
    data: dict[str, Any]
    customer: dict[str, Any] | None = None  # the Recipient's fields
    actions: tuple[str, ...] = ()


def _recipient(customer: Customer) -> dict[str, Any]:
    return {
        "name": customer.name,
        "phone": customer.phone,
        "email": customer.email,
        "language": customer.language,
        "timezone": customer.timezone,
        "reference": customer.reference,
    }


def _base(sub: Subscription, customer: Customer, template: Template) -> dict[str, Any]:
    return {
        "customer": customer.reference,
        "subscription_id": sub.id,
        "kind": sub.kind,
        "template": template.name,
        "service": template.name,  # the service's own name replaces it when the notice is queued
        "service_id": template.service_id,
        "account": template.account,
        "currency": sub.currency,
    }


def _run_data(run: Run, sub: Subscription, customer: Customer, template: Template) -> dict[str, Any]:
    data = _base(sub, customer, template)
    data.update(
        run_id=run.id,
        period=run.period_key,
        scheduled_at=run.scheduled_at.isoformat(),
        due_at=run.scheduled_at.isoformat(),
        state=run.state,
        amount=run.amount,
        payment_id=run.payment_id,
    )
    if run.observed is not None:
        data["observed"] = run.observed
    if run.final_at is not None and run.state == "paid":
        data["paid_at"] = run.final_at.isoformat()
    if run.error_code:
        data["error_code"] = run.error_code
        data["reason"] = run.error_message or run.error_code
    if run.state == "limit_exceeded":
        limit = sub.per_payment_limit if run.error_code == "per_payment_limit" else customer.month_limit
        if limit is not None:
            data["limit"] = limit
    if run.state == "awaiting_confirmation" and sub.debt_limit is not None:
        data["limit"] = sub.debt_limit
    return data


def upcoming(
    sub: Subscription, customer: Customer, template: Template, agent_id: int, period_key: str, at: dt.datetime
) -> Notice:
    data = _base(sub, customer, template)
    data.update(period=period_key, scheduled_at=at.isoformat(), due_at=at.isoformat(), amount=sub.amount)
    return Notice(
        "charge.upcoming", agent_id, f"charge.upcoming:{sub.id}:{period_key}", data, _recipient(customer)
    )


def _retry(run: Run) -> str:
    """A retried run (:func:`~paymux.recurring.executor.retry_run`) is told about again."""
    _, sep, n = run.debit_key.partition(".r")
    return f".r{n}" if sep else ""


def about_run(
    event: str, run: Run, sub: Subscription, customer: Customer, template: Template, agent_id: int
) -> Notice:
    """``run.paid``, ``run.failed``, ``run.limit_exceeded``, ``run.skipped`` or ``debt.confirm``."""
    assert event in EVENTS, event
    actions = ("confirm", "decline") if event == "debt.confirm" else ()
    return Notice(
        event,
        agent_id,
        f"{event}:{run.id}{_retry(run)}",
        _run_data(run, sub, customer, template),
        _recipient(customer),
        actions,
    )


async def emit(session: AsyncSession, notice: Notice) -> list[int]:
    """Queue ``notice`` in ``session`` (delivered once the caller commits; the same key never twice)."""
    data = dict(notice.data)
    service = await session.get(Service, data.get("service_id"))
    if service is not None:
        data["service"] = service.name
    recipient = Recipient(**notice.customer) if notice.customer else None
    return await notify(
        session,
        agent_id=notice.agent_id,
        event=notice.event,
        recipient=recipient,
        data=data,
        key=notice.key,
        actions=tuple(Action(name=a) for a in notice.actions),
    )
