"""Tables of hidden subscriptions (migration 0017): reminders and the sweep's cursor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

REMINDER_STATUSES = ("pending", "sent", "repeated", "subscribed", "opted_out", "expired")


class Reminder(Base):
    """A one-off payment of a periodic service remembered for its customer; reminded one period later.

    ``status``: ``pending`` (not due yet), ``sent`` (the notice went out with its three actions),
    ``repeated`` / ``subscribed`` / ``opted_out`` (the customer's last action), ``expired`` (not
    sent: opted out meanwhile, subscribed meanwhile, superseded by a newer payment; or sent and never
    acted on in time). The action token is given only in the notice; the row keeps its SHA-256.
    The ``*_at`` columns record each action once (conversion is counted from them).
    """

    __tablename__ = "recurring_reminders"
    __table_args__ = (
        Index(
            "ix_recurring_reminders_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_recurring_reminders_expiring",
            "expires_at",
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
        Index("ix_recurring_reminders_customer", "agent_id", "reference", "service_id", "account"),
        Index("ix_recurring_reminders_sent", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    reference: Mapped[str] = mapped_column(String(64))  # the agent's customer reference
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("recurring_customers.id"), nullable=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    account: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units of currency (what was paid)
    currency: Mapped[str] = mapped_column(String(3))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)  # the one-off payment
    paid_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # one period after paid_at
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # of the actions
    repeated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    repeat_payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True)
    subscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("recurring_subscriptions.id"), nullable=True
    )
    opted_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReminderSweep(Base):
    """How far the sweep over newly succeeded payments with a customer has gone (one row, id 1)."""

    __tablename__ = "recurring_reminder_sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    final_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    payment_id: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
