"""Notifications: the templates editor (per event, channel and language; an override must render on
the event's sample data before it is saved; reset to the shipped one) and the notifications sent,
each with its delivery log. Changes are audited (``paymux.notifications.template_admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    OPERATIONS,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.catalog.models import Agent
from paymux.errors import Problem
from paymux.masking import mask_url
from paymux.notifications import templates as T
from paymux.notifications.models import (
    CHANNELS,
    STATUSES,
    DeliveryAttempt,
    Notification,
    NotificationTemplate,
)
from paymux.notifications.service import notification_view
from paymux.notifications.template_admin import (
    find_override,
    reset_override,
    save_override,
    template_key,
    template_view,
)

router = section_router()
register(
    Section(
        "notifications",
        router,
        menu=(
            MenuEntry("Notifications", "/backoffice/notifications", P.NOTIFICATIONS_READ, 7, area=OPERATIONS),
            MenuEntry(
                "Notification templates",
                "/backoffice/notification-templates",
                P.NOTIFICATIONS_READ,
                8,
                area=OPERATIONS,
            ),
        ),
        permissions=(P.NOTIFICATIONS_READ, P.NOTIFICATIONS_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.NOTIFICATIONS_READ))]
Writer = Annotated[Principal, Depends(require(P.NOTIFICATIONS_WRITE))]


@router.get("/notification-templates")
async def templates_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    overrides = {
        (o.event, o.channel, o.language): o
        for o in (await session.scalars(select(NotificationTemplate))).all()
    }
    events = sorted({*T.known_events(), T.GENERIC, *(k[0] for k in overrides)})
    rows = [
        {
            "event": e,
            "channel": c,
            "language": lang,
            "origin": "override"
            if (e, c, lang) in overrides
            else "shipped"
            if T.shipped(e, c, lang) is not None
            else "generic",
            "updated_by": overrides[(e, c, lang)].updated_by if (e, c, lang) in overrides else "",
        }
        for e in events
        for c in T.TEMPLATE_CHANNELS
        for lang in T.LANGUAGES
    ]
    return render(request, "notifications/templates.html", rows=rows)


def _key_or_404(event: str, channel: str, language: str) -> tuple[str, str, str]:
    try:
        return template_key(event, channel, language)
    except Problem:
        raise PageNotFound() from None


@router.get("/notification-templates/{event}/{channel}/{language}")
async def template_edit(
    request: Request, event: str, channel: str, language: str, session: ReadDbDep, _: Reader
) -> Response:
    key = _key_or_404(event, channel, language)
    view = template_view(*key, await find_override(session, *key))
    return render(request, "notifications/template.html", t=view, problem="", draft=None)


@router.post("/notification-templates/{event}/{channel}/{language}")
async def template_save(
    request: Request,
    event: str,
    channel: str,
    language: str,
    session: DbDep,
    me: Writer,
    body: Annotated[str, Form(max_length=T.MAX_SOURCE)] = "",
    subject: Annotated[str, Form(max_length=T.MAX_SOURCE)] = "",
    action: Annotated[str, Form()] = "save",
) -> Response:
    """Save the override (``action=save``), or reset to the shipped template (``action=reset``)."""
    key = _key_or_404(event, channel, language)
    page = "/backoffice/notification-templates/" + "/".join(key)
    if action == "reset":
        changed = await reset_override(session, me, *key)
        await session.commit()
        return redirect(page, "The shipped template is in force again." if changed else None)
    try:
        await save_override(session, me, *key, subject=subject or None, body=body)
    except Problem as e:
        await session.rollback()
        view = template_view(*key, await find_override(session, *key))
        return render(
            request,
            "notifications/template.html",
            status_code=422,
            t=view,
            problem=e.detail or e.title,
            draft={"subject": subject, "body": body},
        )
    await session.commit()
    return redirect(page, "The template is saved.")


@router.get("/notifications")
async def notifications_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    spec = ListSpec(
        query=select(Notification, Agent.code.label("agent")).join(Agent, Agent.id == Notification.agent_id),
        columns=[
            Column("id", "Notification", Notification.id, lambda r: r[0].id),
            Column("created_at", "Created", Notification.created_at, lambda r: r[0].created_at),
            Column("agent", "Agent", Agent.code, lambda r: r.agent),
            Column("event", "Event", Notification.event, lambda r: r[0].event),
            Column("channel", "Channel", Notification.channel, lambda r: r[0].channel),
            Column("reference", "Customer", Notification.reference, lambda r: r[0].reference),
            Column("status", "Status", Notification.status, lambda r: r[0].status),
            Column("attempts", "Attempts", Notification.attempts, lambda r: r[0].attempts),
            Column("last_error", "Error", None, lambda r: r[0].last_error),
        ],
        search=[Notification.reference, Notification.event, Notification.address],
        filters=[
            Filter(
                "status", "Status", lambda q, v: q.where(Notification.status == v), [(s, s) for s in STATUSES]
            ),
            Filter(
                "channel",
                "Channel",
                lambda q, v: q.where(Notification.channel == v),
                [(c, c) for c in CHANNELS],
            ),
            Filter("event", "Event", lambda q, v: q.where(Notification.event == v.strip())),
        ],
        default_sort="created_at",
        sheet="notifications",
    )
    return respond(request, await spec.run(session, request), "notifications/list.html")


@router.get("/notifications/{notification_id}")
async def notification_detail(
    request: Request, notification_id: Id, session: ReadDbDep, _: Reader
) -> Response:
    n = await session.get(Notification, notification_id)
    if n is None or n.agent_id is None:  # a biller's notice is shown with its invoice
        raise PageNotFound()
    agent = await session.get(Agent, n.agent_id)
    attempts = (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id == n.id)
            .order_by(DeliveryAttempt.id)
        )
    ).all()
    return render(
        request,
        "notifications/detail.html",
        n=notification_view(n),
        agent=agent,
        attempts=attempts,
        target=lambda a: mask_url(a.target) if a.target and "://" in a.target else a.target,
    )
