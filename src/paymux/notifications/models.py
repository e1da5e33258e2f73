"""Notification tables: notifications (each its own delivery job), the delivery log, template
overrides and the agents' webhook endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

CHANNELS = ("webhook", "sms", "email")
STATUSES = ("pending", "running", "delivered", "failed")


class Notification(Base):
    """One notice of an event to one channel (the agent's webhook, an SMS, an e-mail).

    The row is its own delivery job (claimed like register tasks, see :mod:`paymux.worker.jobs`):
    ``status`` ``pending`` / ``running`` / ``delivered`` / ``failed``, ``due_at`` when it is due,
    ``lease_owner`` the fencing token of the round that claimed it, ``attempts`` so far. A failed
    attempt is retried with growing intervals until ``expires_at``; then it is ``failed``.

    ``(agent_id, key, channel)`` (``(biller_id, key, channel)`` for a biller's) is unique: the same
    idempotency key never notifies twice.
    ``subject`` and ``body`` are the rendered text (the webhook's body is its JSON payload).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("agent_id", "key", "channel"),
        UniqueConstraint("biller_id", "key", "channel"),
        Index("ix_notifications_due", "status", "due_at"),
        Index("ix_notifications_reference", "agent_id", "reference", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # whose notice it is: an agent's (its webhook endpoint) or, for invoices, a biller's (its webhook)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    biller_id: Mapped[int | None] = mapped_column(ForeignKey("billers.id"), nullable=True)
    key: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the agent's customer
    address: Mapped[str | None] = mapped_column(String(320), nullable=True)  # phone or e-mail
    language: Mapped[str] = mapped_column(String(8), default="en")
    subject: Mapped[str | None] = mapped_column(String(500), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    # {"type", "timestamp", "data", "actions", "customer"}: what the webhook carries and the listing shows
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # retried until then, then failed
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryAttempt(Base):
    """The delivery log: one row per attempt to deliver a notification."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    target: Mapped[str | None] = mapped_column(String(500), nullable=True)  # URL, phone or e-mail


class NotificationTemplate(Base):
    """An override of a shipped template for one event, channel (sms, email) and language."""

    __tablename__ = "notification_templates"
    __table_args__ = (UniqueConstraint("event", "channel", "language"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    """Where an agent receives its notifications, signed per Standard Webhooks with ``secret``."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(500))  # whsec_... (sealed when a key is configured)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
