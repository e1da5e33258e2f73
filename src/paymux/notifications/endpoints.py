"""Admin API of notifications: templates (list, get, put, reset), the agents' webhook endpoints
(secret shown once, masked in every read), notifications with their delivery log, redelivery.

Reads need ``notifications.read``, changes ``notifications.write``; every change is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy import delete, select

from paymux import audit
from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.catalog.models import Agent
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.masking import mask_secrets, mask_url
from paymux.notifications import templates as T
from paymux.notifications.models import (
    CHANNELS,
    STATUSES,
    DeliveryAttempt,
    Notification,
    NotificationTemplate,
    WebhookEndpoint,
)
from paymux.notifications.service import notification_view
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.template_admin import (
    find_override,
    reset_override,
    save_override,
    template_key,
    template_view,
)
from paymux.notifications.webhooks import (
    check_secret_key,
    endpoint_of,
    endpoint_view,
    generate_secret,
    seal,
    url_problems,
)

router = APIRouter(prefix="/api/v1/admin", tags=["notifications"])

Reader = Annotated[Principal, Depends(require_api(P.NOTIFICATIONS_READ))]
Writer = Annotated[Principal, Depends(require_api(P.NOTIFICATIONS_WRITE))]


# --- templates ---------------------------------------------------------------------------------------


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: StrictStr | None = Field(
        default=None,
        max_length=T.MAX_SOURCE,
        description="e-mail only",
        examples=["Payment made: {{ service }}"],
    )
    body: StrictStr = Field(
        max_length=T.MAX_SOURCE, examples=["{{ amount|money(currency) }} paid for {{ service }}."]
    )


@router.get("/notification-templates")
async def list_templates(session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    """Every template: the shipped events' and those only overridden, per channel and language
    (``source``: ``override``, ``shipped`` or ``generic``)."""
    overrides = {
        (o.event, o.channel, o.language): o
        for o in (await session.scalars(select(NotificationTemplate))).all()
    }
    events = sorted({*T.known_events(), T.GENERIC, *(k[0] for k in overrides)})
    items = [
        template_view(e, c, lang, overrides.get((e, c, lang)))
        for e in events
        for c in T.TEMPLATE_CHANNELS
        for lang in T.LANGUAGES
    ]
    for item in items:
        item.pop("sample_data")
        item.pop("preview")
    return {"items": items, "events": T.known_events(), "generic": T.GENERIC}


@router.get("/notification-templates/{event}/{channel}/{language}")
async def get_template(
    event: str, channel: str, language: str, session: ReadSessionDep, _: Reader
) -> dict[str, Any]:
    """The template in force (with the shipped one, and a preview on sample data)."""
    key = template_key(event, channel, language)
    return template_view(*key, await find_override(session, *key))


@router.put("/notification-templates/{event}/{channel}/{language}")
async def put_template(
    event: str, channel: str, language: str, body: TemplateIn, session: SessionDep, me: Writer
) -> dict[str, Any]:
    """Override the template; it must render on the event's sample data (422 with the reason if not)."""
    key = template_key(event, channel, language)
    row = await save_override(session, me, *key, subject=body.subject, body=body.body)
    await session.commit()
    return template_view(*key, row)


@router.post("/notification-templates/{event}/{channel}/{language}/preview")
async def preview_template(
    event: str, channel: str, language: str, body: TemplateIn, _: Reader
) -> dict[str, Any]:
    """Render a template on the event's sample data without saving it (422 with the reason if it
    cannot be used): what the editor shows while a template is written."""
    key = template_key(event, channel, language)
    source = T.Source(body.subject if channel == "email" else None, body.body)
    try:
        out = T.check(source, *key)
    except T.TemplateProblem as e:
        raise invalid("invalid-template", str(e)) from None
    return {"subject": out.subject, "body": out.body, "sample_data": T.sample_data(event)}


@router.delete("/notification-templates/{event}/{channel}/{language}")
async def reset_template(
    event: str, channel: str, language: str, session: SessionDep, me: Writer
) -> dict[str, Any]:
    """Drop the override: the shipped template is in force again."""
    key = template_key(event, channel, language)
    if await reset_override(session, me, *key):
        await session.commit()
    return template_view(*key, None)


# --- webhook endpoints -------------------------------------------------------------------------------


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(max_length=2000, examples=["https://bank.example/paymux/webhooks"])
    enabled: StrictBool = True


async def _agent(session: Any, code: str) -> Agent:
    agent: Agent | None = await session.scalar(select(Agent).where(Agent.code == code[:200]))
    if agent is None:
        raise not_found(f"agent {code[:80]!r}")
    return agent


def _settings() -> NotificationSettings:
    settings = NotificationSettings()
    problems = check_secret_key(settings)
    if problems:
        raise Problem(503, "misconfigured", "Misconfigured", "; ".join(problems))
    return settings


@router.get("/webhook-endpoints")
async def list_endpoints(session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    """Every agent's webhook endpoint (secrets masked)."""
    rows = (
        await session.execute(
            select(WebhookEndpoint, Agent.code)
            .join(Agent, Agent.id == WebhookEndpoint.agent_id)
            .order_by(Agent.code)
        )
    ).all()
    return {"items": [endpoint_view(e, code) for e, code in rows]}


@router.get("/agents/{code}/webhook-endpoint")
async def get_endpoint(code: str, session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    """The agent's webhook endpoint (the secret masked)."""
    agent = await _agent(session, code)
    endpoint = await endpoint_of(session, agent.id)
    if endpoint is None:
        raise not_found(f"a webhook endpoint of agent {code!r}")
    return endpoint_view(endpoint, agent.code)


@router.put("/agents/{code}/webhook-endpoint")
async def put_endpoint(code: str, body: EndpointIn, session: SessionDep, me: Writer) -> JSONResponse:
    """Create (201: the answer shows the new secret, once) or change (200) the agent's endpoint."""
    problems = url_problems(body.url)
    if problems:
        raise invalid("invalid-webhook-endpoint", "; ".join(problems))
    agent = await _agent(session, code)
    endpoint = await endpoint_of(session, agent.id)
    now = utcnow()
    secret = None
    before = None
    if endpoint is None:
        settings = _settings()
        secret = generate_secret()
        endpoint = WebhookEndpoint(agent_id=agent.id, secret=seal(secret, settings), created_at=now)
        session.add(endpoint)
    else:
        before = endpoint_view(endpoint, agent.code)
    url = body.url
    if before is not None and endpoint.url != url and url == mask_url(endpoint.url):
        url = endpoint.url  # sent back as a read showed it: the stored password stays
    endpoint.url, endpoint.enabled, endpoint.updated_at = url, body.enabled, now
    await session.flush()
    after = endpoint_view(endpoint, agent.code)
    await audit.record(session, me, "webhook_endpoint.put", f"agent:{agent.code}", before, after)
    await session.commit()
    return JSONResponse(endpoint_view(endpoint, agent.code, secret), status_code=201 if secret else 200)


@router.post("/agents/{code}/webhook-endpoint/secret")
async def rotate_secret(code: str, session: SessionDep, me: Writer) -> dict[str, Any]:
    """A new secret for the agent's endpoint, shown in this answer only; the old one stops at once."""
    agent = await _agent(session, code)
    endpoint = await endpoint_of(session, agent.id)
    if endpoint is None:
        raise not_found(f"a webhook endpoint of agent {code!r}")
    secret = generate_secret()
    endpoint.secret, endpoint.updated_at = seal(secret, _settings()), utcnow()
    await audit.record(session, me, "webhook_endpoint.rotate_secret", f"agent:{agent.code}")
    await session.commit()
    return endpoint_view(endpoint, agent.code, secret)


@router.delete("/agents/{code}/webhook-endpoint", status_code=204)
async def delete_endpoint(code: str, session: SessionDep, me: Writer) -> None:
    """Remove the agent's endpoint: its pending webhooks fail their attempts until one is set again."""
    agent = await _agent(session, code)
    endpoint = await endpoint_of(session, agent.id)
    if endpoint is None:
        raise not_found(f"a webhook endpoint of agent {code!r}")
    before = endpoint_view(endpoint, agent.code)
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
    await audit.record(session, me, "webhook_endpoint.delete", f"agent:{agent.code}", before)
    await session.commit()


# --- notifications and their delivery log -------------------------------------------------------------


def _admin_view(n: Notification, agent_code: str | None) -> dict[str, Any]:
    view = notification_view(n, tokens=True)
    view["agent"] = agent_code
    masked: dict[str, Any] = mask_secrets(view)  # action tokens shown as ***
    return masked


def _attempt_view(a: DeliveryAttempt) -> dict[str, Any]:
    return {
        "at": a.at.isoformat(),
        "ok": a.ok,
        "status_code": a.status_code,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "target": a.target,
    }


@router.get("/notifications")
async def list_notifications(
    session: ReadSessionDep,
    _: Reader,
    agent: str | None = None,
    reference: str | None = None,
    event: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Id | None = None,
) -> dict[str, Any]:
    """Notifications, newest first (page with ``before_id``), filtered by agent code, customer
    reference, event, channel (webhook, sms, email) and status (pending, running, delivered, failed)."""
    if channel is not None and channel not in CHANNELS:
        raise invalid("invalid-filter", f"channel must be one of {', '.join(CHANNELS)}")
    if status is not None and status not in STATUSES:
        raise invalid("invalid-filter", f"status must be one of {', '.join(STATUSES)}")
    q = (
        select(Notification, Agent.code)
        .join(Agent, Agent.id == Notification.agent_id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if agent is not None:
        q = q.where(Agent.code == agent[:200])
    if reference is not None:
        q = q.where(Notification.reference == reference[:200])
    if event is not None:
        q = q.where(Notification.event == event[:64])
    if channel is not None:
        q = q.where(Notification.channel == channel)
    if status is not None:
        q = q.where(Notification.status == status)
    if before_id is not None:
        q = q.where(Notification.id < before_id)
    return {"items": [_admin_view(n, code) for n, code in (await session.execute(q)).all()]}


async def _notification(session: Any, nid: int) -> tuple[Notification, str | None]:
    found = (
        await session.execute(
            select(Notification, Agent.code)
            .join(Agent, Agent.id == Notification.agent_id)
            .where(Notification.id == nid)
        )
    ).first()
    if found is None:
        raise not_found(f"notification {nid}")
    return found[0], found[1]


@router.get("/notifications/{notification_id}")
async def get_notification(notification_id: Id, session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    """A notification with its delivery log (every attempt: time, status code, error, duration)."""
    n, code = await _notification(session, notification_id)
    view = _admin_view(n, code)
    attempts = (
        await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id == n.id)
            .order_by(DeliveryAttempt.id)
        )
    ).all()
    view["delivery_log"] = [_attempt_view(a) for a in attempts]
    if n.channel == "webhook":
        view["body"] = mask_secrets(n.payload or {})
    return view


@router.post("/notifications/{notification_id}/redeliver")
async def redeliver(notification_id: Id, session: SessionDep, me: Writer) -> dict[str, Any]:
    """Send the notification again now (delivered or failed ones too), retried for another window;
    409 while a worker is sending it.

    The row is locked as it is read: a worker claiming it at the same moment either claims it first
    (and this answers 409) or waits and claims the redelivered notification."""
    n = await locked(session, Notification, notification_id, key_share=True)
    if n is None or n.agent_id is None:  # a biller's: redelivered by the invoices admin API
        raise not_found(f"notification {notification_id}")
    if n.status == "running":
        raise Problem(
            409,
            "notification-running",
            "Being sent",
            f"notification {n.id} is being sent; wait for its result",
        )
    code = await session.scalar(select(Agent.code).where(Agent.id == n.agent_id))
    now = utcnow()
    before = {"status": n.status, "attempts": n.attempts}
    n.status, n.due_at, n.lease_owner, n.updated_at = "pending", now, None, now
    n.expires_at = now + dt.timedelta(seconds=NotificationSettings().retry_window_seconds)
    await audit.record(
        session, me, "notification.redeliver", f"notification:{n.id}", before, {"status": "pending"}
    )
    await session.commit()
    return _admin_view(n, code)
