"""Recording notifications: :func:`notify` (in the caller's transaction) and the customer's listing.

Other modules (recurring payments, invoices) call :func:`notify` in the transaction that changes
their state, so that the change and its notices are committed together (it never commits). Each
channel that applies gets a row of its own (:class:`paymux.notifications.models.Notification`) with
its rendered text, due at once; the notification worker delivers it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import CONTROL
from paymux.db.base import utcnow
from paymux.notifications import templates as T
from paymux.notifications.models import CHANNELS, Notification, NotificationTemplate, WebhookEndpoint
from paymux.notifications.settings import NotificationSettings

__all__ = ["Action", "Recipient", "notifications_for", "notify"]

EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\Z")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}\Z")


@dataclass(frozen=True)
class Recipient:
    """The customer, when the notice goes to a person too."""

    name: str | None = None
    phone: str | None = None  # E.164
    email: str | None = None
    language: str = "en"  # en, ru, ro (others fall back to en)
    timezone: str = "UTC"  # shown dates are in this zone
    reference: str | None = None  # the agent's own customer reference


@dataclass(frozen=True)
class Action:
    """Something the customer may do about the notice (confirm, decline, repeat, subscribe, opt_out);
    ``url`` is shown to the customer, ``token`` lets the agent's channel act on the customer's behalf."""

    name: str
    url: str | None = None
    token: str | None = None


_ENV_PREFIX = "PAYMUX_NOTIFICATIONS_"
_cached: tuple[tuple[tuple[str, str], ...], NotificationSettings] | None = None


def _settings() -> NotificationSettings:
    """The settings as the environment has them now (built again only when a ``PAYMUX_NOTIFICATIONS_*``
    variable changed: building them costs about a millisecond, and every notice asks)."""
    global _cached
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(_ENV_PREFIX)))
    if _cached is None or _cached[0] != env:
        _cached = (env, NotificationSettings())
    return _cached[1]


def _channels(channels: Sequence[str]) -> list[str]:
    if isinstance(channels, str):
        channels = (channels,)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"unknown notification channels {unknown}; known: {', '.join(CHANNELS)}")
    return [c for c in CHANNELS if c in channels]  # each once, in a fixed order


def _valid_email(email: str | None) -> str | None:
    if not email:
        return None
    email = email.strip()
    if len(email) > 320 or "@" not in email or any(c.isspace() or ord(c) < 32 for c in email):
        return None
    return email


def _valid_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    phone = phone.strip().replace(" ", "")
    return phone if PHONE.match(phone) else None


async def _overrides(
    session: AsyncSession, event: str, language: str
) -> dict[tuple[str, str, str], T.Source]:
    rows = (
        await session.scalars(
            select(NotificationTemplate).where(
                NotificationTemplate.event.in_([event, T.GENERIC]),
                NotificationTemplate.language.in_({language, "en"}),
            )
        )
    ).all()
    return {(r.event, r.channel, r.language): T.Source(r.subject, r.body) for r in rows}


async def _existing(
    session: AsyncSession, agent_id: int | None, key: str, biller_id: int | None = None
) -> list[int]:
    owner = Notification.agent_id == agent_id if biller_id is None else Notification.biller_id == biller_id
    return list(
        (
            await session.scalars(
                select(Notification.id).where(owner, Notification.key == key).order_by(Notification.id)
            )
        ).all()
    )


async def notify(
    session: AsyncSession,
    *,
    agent_id: int | None = None,
    biller_id: int | None = None,
    event: str,
    recipient: Recipient | None,
    data: dict[str, Any],
    key: str,
    channels: Sequence[str] = ("webhook", "sms", "email"),
    actions: Sequence[Action] = (),
    retry_window: dt.timedelta | None = None,
) -> list[int]:
    """Record the notices of ``event`` for the agent and the customer, one per channel that applies;
    returns their ids. Never commits (the caller's transaction does).

    * ``webhook`` applies when the agent has an enabled webhook endpoint, ``sms`` when the recipient
      has a phone number (E.164), ``email`` when it has an e-mail address.
    * ``key`` is an idempotency key (per agent): the same key again creates nothing and returns the
      ids recorded under it the first time.
    * ``data`` is what the event is about (JSON-able; datetimes and decimals are written as text);
      amounts in minor units with their ``currency``. The texts are rendered now, from the templates
      in the recipient's language (``en`` if it has none).
    * ``biller_id`` instead of ``agent_id``: a biller's notice (invoice collection); ``webhook``
      applies when the biller has an enabled webhook URL and secret (``paymux.invoices``).
    * ``retry_window``: how long a failed delivery is retried (default ``retry_window_seconds``).
    """
    if (agent_id is None) == (biller_id is None):
        raise ValueError("exactly one of agent_id and biller_id is required")
    if not key or len(key) > 200 or "\x00" in key:
        raise ValueError("key must be 1 to 200 characters (no NUL)")
    if not EVENT.match(event) or len(event) > 64:
        raise ValueError(f"event {event!r} must be dotted lower-case names, at most 64 characters")
    wanted = _channels(channels)
    if recipient is not None and recipient.reference is not None:
        ref = recipient.reference
        if not ref or len(ref) > 200 or CONTROL.search(ref):
            raise ValueError("recipient.reference must be 1 to 200 characters without control characters")
    found = await _existing(session, agent_id, key, biller_id)
    if found:
        return found

    settings = _settings()
    now = utcnow()
    language = T.normalize_language(recipient.language if recipient else None)
    timezone = T.valid_timezone(recipient.timezone if recipient else None)  # unknown zones: UTC
    reference = recipient.reference if recipient else None
    safe_data = T.json_safe(data or {})
    action_list = [{"name": a.name, "url": a.url, "token": a.token} for a in actions]

    applicable: list[tuple[str, str | None]] = []
    if "webhook" in wanted:
        if biller_id is not None:
            from paymux.invoices.models import Biller

            endpoint = await session.scalar(
                select(Biller.id).where(
                    Biller.id == biller_id,
                    Biller.webhook_enabled.is_(True),
                    Biller.webhook_url.is_not(None),
                    Biller.webhook_secret.is_not(None),
                )
            )
        else:
            endpoint = await session.scalar(
                select(WebhookEndpoint.id).where(
                    WebhookEndpoint.agent_id == agent_id, WebhookEndpoint.enabled.is_(True)
                )
            )
        if endpoint is not None:
            applicable.append(("webhook", None))
    phone = _valid_phone(recipient.phone) if recipient else None
    if "sms" in wanted and phone:
        applicable.append(("sms", phone))
    email = _valid_email(recipient.email) if recipient else None
    if "email" in wanted and email:
        applicable.append(("email", email))
    if not applicable:
        return []

    payload: dict[str, Any] = {
        "type": event,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": safe_data,
        "actions": action_list,
        "customer": {"reference": reference} if reference is not None else None,
    }
    ctx = T.context(
        event=event,
        data=safe_data,
        language=language,
        timezone=timezone,
        customer_name=recipient.name if recipient else None,
        reference=reference,
        actions=action_list,
    )
    texts = any(channel != "webhook" for channel, _ in applicable)
    overrides = await _overrides(session, event, language) if texts else {}
    expires = now + (retry_window or dt.timedelta(seconds=settings.retry_window_seconds))
    rows: list[Notification] = []
    for channel, address in applicable:
        if channel == "webhook":
            subject, body = None, orjson.dumps(payload).decode()
        else:
            rendered = T.render(event, channel, ctx, overrides)
            subject, body = rendered.subject, rendered.body
        rows.append(
            Notification(
                agent_id=agent_id,
                biller_id=biller_id,
                key=key,
                event=event,
                channel=channel,
                reference=reference,
                address=address,
                language=language,
                subject=subject,
                body=body,
                payload=payload,
                status="pending",
                due_at=now,
                expires_at=expires,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    try:
        async with session.begin_nested():
            session.add_all(rows)
            await session.flush()
    except IntegrityError:
        # the same key recorded at the same time by another transaction, which has committed now
        found = await _existing(session, agent_id, key, biller_id)
        if found:
            return found
        raise
    return [r.id for r in rows]


def notification_view(n: Notification, *, tokens: bool = False) -> dict[str, Any]:
    """A notification as the APIs show it (action tokens only with ``tokens``)."""
    payload = n.payload or {}
    actions = [
        {k: v for k, v in a.items() if tokens or k != "token"}
        for a in payload.get("actions") or []
        if isinstance(a, dict)
    ]
    return {
        "id": n.id,
        "event": n.event,
        "channel": n.channel,
        "key": n.key,
        "reference": n.reference,
        "address": n.address,
        "language": n.language,
        "subject": n.subject,
        "text": n.body if n.channel != "webhook" else None,
        "data": payload.get("data"),
        "actions": actions,
        "status": n.status,
        "attempts": n.attempts,
        "last_error": n.last_error,
        "created_at": n.created_at.isoformat(),
        "delivered_at": n.delivered_at.isoformat() if n.delivered_at else None,
        "next_attempt_at": n.due_at.isoformat() if n.status == "pending" else None,
        "expires_at": n.expires_at.isoformat(),
    }


async def notifications_for(
    session: AsyncSession,
    agent_id: int,
    reference: str,
    *,
    channels: Sequence[str] = ("sms", "email", "webhook"),
    event: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """The customer's notifications (by the agent's customer reference), newest first; page with
    ``before_id``. Each as :func:`notification_view` shows it, without action tokens."""
    q = (
        select(Notification)
        .where(
            Notification.agent_id == agent_id,
            Notification.reference == reference,
            Notification.channel.in_(_channels(channels)),
        )
        .order_by(Notification.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    if event:
        q = q.where(Notification.event == event)
    if before_id is not None:
        q = q.where(Notification.id < before_id)
    return [notification_view(n) for n in (await session.scalars(q)).all()]
