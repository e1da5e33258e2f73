"""Channel API of recurring payments: customers, templates, subscriptions, their runs, pushed events.

Authenticated like the payments API (the channel's key); the customer is the channel's agent's, named
by the agent's own reference, so every channel of the agent sees the same customers. Every write is
idempotent (see ``recurring/service.py``); the route commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.deps import ChannelDep, HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.catalog.snapshot import ChannelView
from paymux.db.base import utcnow
from paymux.errors import not_found
from paymux.notifications.service import notifications_for
from paymux.recurring import service
from paymux.recurring.executor import confirm_debt
from paymux.recurring.models import Customer, Run, Subscription, Template
from paymux.recurring.schemas import (
    KIND,
    STATUS,
    ConfirmIn,
    CustomerIn,
    CustomerNotificationOut,
    CustomerNotificationPageOut,
    CustomerOut,
    EventIn,
    EventOut,
    FromPaymentIn,
    ReasonIn,
    Reference,
    RunOut,
    RunPageOut,
    SubscriptionChange,
    SubscriptionIn,
    SubscriptionOut,
    TemplateChange,
    TemplateIn,
    TemplateOut,
)

router = APIRouter(prefix="/api/v1", tags=["recurring"])

T = TypeVar("T")

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid key or signature (problem+json)"},
    403: {"description": "channel disabled, or a channel of no agent (problem+json)"},
    404: {
        "description": "no such customer (of this channel's agent), template or subscription (problem+json)"
    },
    422: {"description": "invalid request: the problem names the field (problem+json)"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the key was used for another request (problem+json)"}
}
STATE: dict[int | str, dict[str, Any]] = {
    409: {"description": "not possible in the subscription's status, e.g. resume a cancelled one"}
}
C = "/customers/{reference}"


async def _write(session: AsyncSession, fn: Callable[[], Awaitable[T]]) -> T:
    """Run a write and commit it; a concurrent twin (a unique key taken meanwhile) is run once more,
    which then finds what the twin made."""
    try:
        result = await fn()
        await session.commit()
        return result
    except IntegrityError:
        await session.rollback()
    result = await fn()
    await session.commit()
    return result


async def _customer(session: AsyncSession, channel: ChannelView, reference: str) -> Customer:
    return await service.get_customer(session, service.agent_of(channel), reference)


# --- customers -------------------------------------------------------------------------------------------


@router.put(
    C,
    response_model=CustomerOut,
    status_code=200,
    summary="Create or update a customer",
    responses={201: {"model": CustomerOut, "description": "created"}, **PROBLEMS},
)
async def put_customer(
    reference: Reference, body: CustomerIn, channel: ChannelDep, session: SessionDep, response: Response
) -> CustomerOut:
    """Create the customer of this channel's agent under ``reference`` (201; ``currency`` needed), or
    change the fields given (200). The same request again changes nothing."""
    agent = service.agent_of(channel)
    customer, created = await _write(session, lambda: service.put_customer(session, agent, reference, body))
    response.status_code = 201 if created else 200
    return service.customer_out(customer)


@router.get(C, response_model=CustomerOut, summary="A customer", responses=PROBLEMS)
async def get_customer(reference: Reference, channel: ChannelDep, session: ReadSessionDep) -> CustomerOut:
    return service.customer_out(await _customer(session, channel, reference))


# --- templates -------------------------------------------------------------------------------------------


@router.post(
    f"{C}/templates",
    response_model=TemplateOut,
    status_code=201,
    summary="Save a template",
    responses={200: {"model": TemplateOut, "description": "the same request again"}, **CONFLICT, **PROBLEMS},
)
async def create_template(
    reference: Reference,
    body: TemplateIn,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
    response: Response,
) -> TemplateOut:
    """A saved payment (``amount`` null: asked each time). Idempotent by ``key``."""
    snap = await hub.catalog.get()

    async def create() -> tuple[Template, bool]:
        customer = await _customer(session, channel, reference)
        return await service.create_template(session, snap, customer, body)

    template, created = await _write(session, create)
    response.status_code = 201 if created else 200
    return service.template_out(template, snap)


@router.post(
    f"{C}/templates/from-payment/{{payment_id}}",
    response_model=TemplateOut,
    status_code=201,
    summary="Save a one-off payment as a template",
    responses={200: {"model": TemplateOut, "description": "the same request again"}, **CONFLICT, **PROBLEMS},
)
async def template_from_payment(
    reference: Reference,
    payment_id: Id,
    body: FromPaymentIn,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
    response: Response,
) -> TemplateOut:
    """A payment this channel made (its service, account, fields and amount) saved as the customer's
    template. Idempotent by ``key``."""
    snap = await hub.catalog.get()

    async def create() -> tuple[Template, bool]:
        customer = await _customer(session, channel, reference)
        return await service.template_from_payment(
            session, snap, channel, customer, payment_id, body.key, body.name
        )

    template, created = await _write(session, create)
    response.status_code = 201 if created else 200
    return service.template_out(template, snap)


@router.get(
    f"{C}/templates", response_model=list[TemplateOut], summary="The customer's templates", responses=PROBLEMS
)
async def list_templates(
    reference: Reference, channel: ChannelDep, hub: HubDep, session: ReadSessionDep
) -> list[TemplateOut]:
    snap = await hub.catalog.get()
    customer = await _customer(session, channel, reference)
    return [service.template_out(t, snap) for t in await service.list_templates(session, customer)]


@router.get(
    f"{C}/templates/{{template_id}}", response_model=TemplateOut, summary="A template", responses=PROBLEMS
)
async def get_template(
    reference: Reference, template_id: Id, channel: ChannelDep, hub: HubDep, session: ReadSessionDep
) -> TemplateOut:
    customer = await _customer(session, channel, reference)
    return service.template_out(
        await service.get_template(session, customer, template_id), await hub.catalog.get()
    )


@router.patch(
    f"{C}/templates/{{template_id}}",
    response_model=TemplateOut,
    summary="Change a template",
    responses=PROBLEMS,
)
async def change_template(
    reference: Reference,
    template_id: Id,
    body: TemplateChange,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
) -> TemplateOut:
    """Change the name, account, fields or amount (the service stays)."""
    snap = await hub.catalog.get()
    customer = await _customer(session, channel, reference)
    template = await service.change_template(session, snap, customer, template_id, body)
    await session.commit()
    return service.template_out(template, snap)


@router.delete(
    f"{C}/templates/{{template_id}}",
    status_code=204,
    summary="Delete a template",
    responses={409: {"description": "a live subscription pays with it (problem+json)"}, **PROBLEMS},
)
async def delete_template(
    reference: Reference, template_id: Id, channel: ChannelDep, session: SessionDep
) -> Response:
    """Deleted for every channel (kept for the history); deleting it again answers the same."""
    customer = await _customer(session, channel, reference)
    await service.delete_template(session, customer, template_id)
    await session.commit()
    return Response(status_code=204)


# --- subscriptions ---------------------------------------------------------------------------------------


async def _sub_out(session: AsyncSession, sub: Subscription, customer: Customer, hub: Any) -> SubscriptionOut:
    return (await service.subscriptions_out(session, [sub], customer, await hub.catalog.get()))[0]


@router.post(
    f"{C}/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    summary="Create a subscription",
    responses={
        200: {"model": SubscriptionOut, "description": "the same request again"},
        **CONFLICT,
        **PROBLEMS,
    },
)
async def create_subscription(
    reference: Reference,
    body: SubscriptionIn,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
    response: Response,
) -> SubscriptionOut:
    """A scheduled, threshold or debt autopayment on one of the customer's templates; its first look
    (``next_due_at``) is set. Idempotent by ``key``. 422 names a missing or contradictory field."""
    snap = await hub.catalog.get()
    now = utcnow()

    async def create() -> tuple[Customer, Subscription, bool]:
        customer = await _customer(session, channel, reference)
        sub, created = await service.create_subscription(session, snap, customer, body, now)
        return customer, sub, created

    customer, sub, created = await _write(session, create)
    response.status_code = 201 if created else 200
    return await _sub_out(session, sub, customer, hub)


@router.get(
    f"{C}/subscriptions",
    response_model=list[SubscriptionOut],
    summary="The customer's subscriptions",
    responses=PROBLEMS,
)
async def list_subscriptions(
    reference: Reference,
    channel: ChannelDep,
    hub: HubDep,
    session: ReadSessionDep,
    status: STATUS | None = None,
    kind: KIND | None = None,
) -> list[SubscriptionOut]:
    customer = await _customer(session, channel, reference)
    subs = await service.list_subscriptions(session, customer, status, kind)
    return await service.subscriptions_out(session, subs, customer, await hub.catalog.get())


@router.get(
    f"{C}/subscriptions/{{subscription_id}}",
    response_model=SubscriptionOut,
    summary="A subscription",
    responses=PROBLEMS,
)
async def get_subscription(
    reference: Reference, subscription_id: Id, channel: ChannelDep, hub: HubDep, session: ReadSessionDep
) -> SubscriptionOut:
    customer = await _customer(session, channel, reference)
    sub = await service.get_subscription(session, customer, subscription_id)
    return await _sub_out(session, sub, customer, hub)


@router.patch(
    f"{C}/subscriptions/{{subscription_id}}",
    response_model=SubscriptionOut,
    summary="Change a subscription",
    responses={**STATE, **PROBLEMS},
)
async def change_subscription(
    reference: Reference,
    subscription_id: Id,
    body: SubscriptionChange,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
) -> SubscriptionOut:
    """Change its amount, limits or calendar; a new calendar's next charge is computed from now."""
    snap = await hub.catalog.get()
    customer = await _customer(session, channel, reference)
    sub = await service.get_subscription(session, customer, subscription_id)
    await service.change_subscription(session, snap, customer, sub, body, utcnow())
    await session.commit()
    return await _sub_out(session, sub, customer, hub)


Action = Literal["pause", "resume", "cancel"]


async def _act(
    action: Action,
    reference: str,
    subscription_id: int,
    body: ReasonIn | None,
    channel: ChannelView,
    hub: Any,
    session: AsyncSession,
) -> SubscriptionOut:
    customer = await _customer(session, channel, reference)
    sub = await service.get_subscription(session, customer, subscription_id)
    reason = body.reason if body is not None else None
    if action == "pause":
        await service.pause(session, sub, reason)
    elif action == "resume":
        await service.resume(session, customer, sub, utcnow())
    else:
        await service.cancel(session, sub, reason)
    await session.commit()
    return await _sub_out(session, sub, customer, hub)


@router.post(
    f"{C}/subscriptions/{{subscription_id}}/pause",
    response_model=SubscriptionOut,
    summary="Pause a subscription",
    responses={**STATE, **PROBLEMS},
)
async def pause_subscription(
    reference: Reference,
    subscription_id: Id,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
    body: ReasonIn | None = None,
) -> SubscriptionOut:
    """No run until resumed; pausing a paused one answers it as it is."""
    return await _act("pause", reference, subscription_id, body, channel, hub, session)


@router.post(
    f"{C}/subscriptions/{{subscription_id}}/resume",
    response_model=SubscriptionOut,
    summary="Resume a paused subscription",
    responses={**STATE, **PROBLEMS},
)
async def resume_subscription(
    reference: Reference,
    subscription_id: Id,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
    body: ReasonIn | None = None,
) -> SubscriptionOut:
    """The next look is computed from now: the periods of the pause are not charged afterwards."""
    return await _act("resume", reference, subscription_id, body, channel, hub, session)


@router.post(
    f"{C}/subscriptions/{{subscription_id}}/cancel",
    response_model=SubscriptionOut,
    summary="Cancel a subscription",
    responses={**STATE, **PROBLEMS},
)
async def cancel_subscription(
    reference: Reference,
    subscription_id: Id,
    channel: ChannelDep,
    hub: HubDep,
    session: SessionDep,
    body: ReasonIn | None = None,
) -> SubscriptionOut:
    """For good (a cancelled subscription cannot be resumed); cancelling it again answers it as it is."""
    return await _act("cancel", reference, subscription_id, body, channel, hub, session)


@router.get(
    f"{C}/subscriptions/{{subscription_id}}/runs",
    response_model=RunPageOut,
    summary="A subscription's runs",
    responses=PROBLEMS,
)
async def subscription_runs(
    reference: Reference,
    subscription_id: Id,
    channel: ChannelDep,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Id | None = None,
) -> RunPageOut:
    """Its charges, newest first; ``next_before_id`` pages on."""
    customer = await _customer(session, channel, reference)
    sub = await service.get_subscription(session, customer, subscription_id)
    page = await service.runs_page(session, sub, limit, before_id)
    return RunPageOut(items=[service.run_out(r) for r in page.rows], next_before_id=page.next_before_id)


@router.post(
    f"{C}/subscriptions/{{subscription_id}}/runs/{{run_id}}/confirm",
    response_model=RunOut,
    summary="Confirm or decline a debt above the limit",
    responses={**PROBLEMS, 409: {"description": "the run is not waiting for a confirmation (problem+json)"}},
)
async def confirm_run(
    reference: Reference,
    subscription_id: Id,
    run_id: Id,
    body: ConfirmIn,
    channel: ChannelDep,
    session: SessionDep,
) -> RunOut:
    """The customer's answer to ``debt.confirm``: ``accept`` pays the debt at once, otherwise the run
    ends ``declined``. The same answer again answers the run as it is; a run not waiting is a 409."""
    customer = await _customer(session, channel, reference)
    sub = await service.get_subscription(session, customer, subscription_id)
    run = await session.get(Run, run_id)
    if run is None or run.subscription_id != sub.id:
        raise not_found(f"run {run_id} of subscription {sub.id}")
    run = await confirm_debt(session, run.id, body.accept, utcnow())
    await session.commit()
    return service.run_out(run)


@router.get(
    f"{C}/notifications",
    response_model=CustomerNotificationPageOut,
    summary="The customer's notifications",
    responses=PROBLEMS,
)
async def customer_notifications(
    reference: Reference,
    channel: ChannelDep,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before_id: Id | None = None,
    event: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
    ] = None,
) -> CustomerNotificationPageOut:
    """What the customer was sent by SMS and e-mail (charges upcoming, runs paid or failed, debts to
    confirm, reminders), newest first; ``next_before_id`` pages on. Action tokens are not shown."""
    customer = await _customer(session, channel, reference)
    rows = await notifications_for(
        session,
        customer.agent_id,
        customer.reference,
        channels=("sms", "email"),
        event=event,
        limit=limit + 1,
        before_id=before_id,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return CustomerNotificationPageOut(
        items=[CustomerNotificationOut.model_validate(r) for r in rows],
        next_before_id=rows[-1]["id"] if more and rows else None,
    )


# --- events ----------------------------------------------------------------------------------------------


@router.post(
    "/events",
    response_model=EventOut,
    status_code=201,
    summary="Push a balance or a debt",
    responses={200: {"model": EventOut, "description": "the same request again"}, **CONFLICT, **PROBLEMS},
)
async def push_event(
    body: EventIn, channel: ChannelDep, hub: HubDep, session: SessionDep, response: Response
) -> EventOut:
    """A subscriber's balance or debt at a provider (service and account), sent by the provider or a
    channel of the agent. Idempotent by ``key``. A balance below the threshold of an active threshold
    subscription on that service and account makes it due now (``due_subscriptions``)."""
    agent = service.agent_of(channel)
    snap = await hub.catalog.get()
    now = utcnow()
    event, created, due = await _write(session, lambda: service.record_event(session, snap, agent, body, now))
    response.status_code = 201 if created else 200
    return service.event_out(event, snap, due)
