"""Notification templates' overrides: the one in force for an event, channel and language (with the
shipped one and a preview on sample data), saving an override only if it renders, resetting to the
shipped one. Shared by the admin API and the back office; audited; never commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.errors import invalid
from paymux.notifications import templates as T
from paymux.notifications.models import NotificationTemplate
from paymux.notifications.service import EVENT


def template_key(event: str, channel: str, language: str) -> tuple[str, str, str]:
    if len(event) > 64 or not EVENT.match(event):
        raise invalid("invalid-template", f"event {event[:80]!r} must be dotted lower-case names (run.paid)")
    if channel not in T.TEMPLATE_CHANNELS:
        raise invalid("invalid-template", f"channel must be one of {', '.join(T.TEMPLATE_CHANNELS)}")
    if language not in T.LANGUAGES:
        raise invalid("invalid-template", f"language must be one of {', '.join(T.LANGUAGES)}")
    return event, channel, language


def source_view(source: T.Source | None) -> dict[str, Any] | None:
    return None if source is None else {"subject": source.subject, "body": source.body}


def template_view(
    event: str, channel: str, language: str, override: NotificationTemplate | None
) -> dict[str, Any]:
    shipped = T.shipped(event, channel, language)
    effective: T.Source | None
    if override is not None:
        effective, origin = T.Source(override.subject, override.body), "override"
    elif shipped is not None:
        effective, origin = shipped, "shipped"
    else:
        effective, origin = T.shipped(T.GENERIC, channel, language), "generic"
    assert effective is not None
    try:
        preview: dict[str, Any] | None = T.render_source(
            effective, T.sample_context(event, language)
        ).__dict__
    except T.TemplateProblem:
        preview = None
    return {
        "event": event,
        "channel": channel,
        "language": language,
        "source": origin,
        "subject": effective.subject,
        "body": effective.body,
        "shipped": source_view(shipped),
        "updated_by": override.updated_by if override else None,
        "updated_at": override.updated_at.isoformat() if override else None,
        "preview": preview,
        "sample_data": T.sample_data(event),
    }


async def find_override(
    session: AsyncSession, event: str, channel: str, language: str
) -> NotificationTemplate | None:
    found: NotificationTemplate | None = await session.scalar(
        select(NotificationTemplate).where(
            NotificationTemplate.event == event,
            NotificationTemplate.channel == channel,
            NotificationTemplate.language == language,
        )
    )
    return found


async def save_override(
    session: AsyncSession,
    me: Principal,
    event: str,
    channel: str,
    language: str,
    *,
    subject: str | None,
    body: str,
) -> NotificationTemplate:
    """Override the template; it must render on the event's sample data (422 with the reason if not)."""
    source = T.Source(subject if channel == "email" else None, body)
    try:
        T.check(source, event, channel, language)
    except T.TemplateProblem as e:
        raise invalid("invalid-template", str(e)) from None
    row = await find_override(session, event, channel, language)
    before = None if row is None else {"subject": row.subject, "body": row.body}
    if row is None:
        row = NotificationTemplate(event=event, channel=channel, language=language)
        session.add(row)
    row.subject, row.body = source.subject, source.body
    row.updated_by, row.updated_at = me.audit_name[:200], utcnow()
    await session.flush()
    await audit.record(
        session,
        me,
        "notification_template.put",
        f"template:{event}/{channel}/{language}",
        before,
        {"subject": row.subject, "body": row.body},
    )
    return row


async def reset_override(
    session: AsyncSession, me: Principal, event: str, channel: str, language: str
) -> bool:
    """Drop the override (the shipped template is in force again); False when there was none."""
    row = await find_override(session, event, channel, language)
    if row is None:
        return False
    before = {"subject": row.subject, "body": row.body}
    await session.execute(delete(NotificationTemplate).where(NotificationTemplate.id == row.id))
    await audit.record(
        session, me, "notification_template.reset", f"template:{event}/{channel}/{language}", before
    )
    return True
