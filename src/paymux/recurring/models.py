"""Tables of the recurring module (migration 0015).

Money columns are integer minor units of the row's ``currency``. Dates the customer sees are kept as
the customer's local calendar dates (``start_date``, ``end_date``, a run's ``period_key``); instants
are UTC (:class:`~paymux.db.base.UTCDateTime`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

KINDS = ("scheduled", "threshold", "debt")
PERIODS = ("monthly", "weekly", "days")
SUBSCRIPTION_STATUSES = ("active", "paused", "cancelled", "finished")

# A run's business state (``Run.state``); ``Run.status`` is its job status for the workers
# (``pending`` / ``running`` while there is work, ``done`` once the state is final).
RUN_STATES = (
    "due",  # created for its period, nothing done yet
    "checking",  # threshold / debt: asking the provider for the balance or the debt
    "awaiting_confirmation",  # debt above the customer's limit: the customer is asked
    "debiting",  # the funding source is being debited (key = debit_key); settled by status if lost
    "paying",  # debited; the payment is accepted and being delivered
    "refunding",  # the payment failed for good: the debit is being given back
    "paid",  # final: the payment succeeded
    "refunded",  # final: the payment failed and the debit was given back
    "failed",  # final: nothing was debited (insufficient funds, account closed...)
    "skipped",  # final: too late (older than the catch-up window) or the subscription ended
    "limit_exceeded",  # final: over the subscription's or the customer's monthly limit
    "not_needed",  # final: threshold not reached / no debt
    "declined",  # final: the customer declined a confirmation
)
FINAL_RUN_STATES = ("paid", "refunded", "failed", "skipped", "limit_exceeded", "not_needed", "declined")


class RecurringAgent(Base):
    """An agent's recurring settings: where money comes from and under which channel runs are paid."""

    __tablename__ = "recurring_agents"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    # the channel (of this agent) under which the payments of runs are accepted
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    funding_protocol: Mapped[str] = mapped_column(String(32))  # entry point name in ``paymux.funding``
    funding_config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # secrets masked on read
    upcoming_lead_hours: Mapped[int] = mapped_column(Integer, default=24)  # charge.upcoming before
    catch_up_hours: Mapped[int] = mapped_column(Integer, default=72)  # older missed runs are skipped
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Customer(Base):
    """A payer known to an agent by the agent's own reference (the same in every channel)."""

    __tablename__ = "recurring_customers"
    __table_args__ = (UniqueConstraint("agent_id", "reference"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    reference: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)  # E.164
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    funding_account: Mapped[str | None] = mapped_column(String(64), nullable=True)  # at the bank
    currency: Mapped[str] = mapped_column(String(3))
    month_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # all runs of a month
    reminders: Mapped[bool] = mapped_column(Boolean, default=True)  # hidden-subscription reminders
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Template(Base):
    """A saved payment, reusable from any channel; ``amount`` None means "ask each time"."""

    __tablename__ = "recurring_templates"
    __table_args__ = (UniqueConstraint("customer_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("recurring_customers.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # the channel's idempotency key of the creation
    name: Mapped[str] = mapped_column(String(100))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    account: Mapped[str] = mapped_column(String(64), index=True)
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """An autopayment of one kind on a template.

    - ``scheduled``: ``amount`` every period (``period`` monthly on ``day_of_month`` (31 = the
      month's last day), weekly on ``weekday`` (0 = Monday), or every ``every_days`` days) at
      ``time_of_day`` in the customer's timezone, from ``start_date`` until ``end_date`` or
      ``max_runs`` paid runs;
    - ``threshold``: ``amount`` when the balance at the provider falls below ``threshold`` (polled
      every ``poll_seconds`` or pushed as an event), at most one top-up per ``quiet_seconds``;
    - ``debt``: the debt asked of the provider on the schedule, paid when above zero and not above
      ``debt_limit`` (above it the customer is asked to confirm).

    ``next_due_at`` is when the scheduler looks at it next (None when not active).
    """

    __tablename__ = "recurring_subscriptions"
    __table_args__ = (
        UniqueConstraint("customer_id", "key"),
        Index(
            "ix_recurring_subscriptions_due",
            "next_due_at",
            postgresql_where=text("next_due_at IS NOT NULL"),
            sqlite_where=text("next_due_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("recurring_customers.id"), index=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("recurring_templates.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))  # the channel's idempotency key of the creation
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None for debt
    per_payment_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the schedule (scheduled and debt)
    period: Mapped[str | None] = mapped_column(String(8), nullable=True)
    day_of_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weekday: Mapped[int | None] = mapped_column(Integer, nullable=True)
    every_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time_of_day: Mapped[str] = mapped_column(String(5), default="09:00")  # HH:MM local
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    max_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runs_paid: Mapped[int] = mapped_column(Integer, default=0)
    # threshold
    threshold: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    poll_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quiet_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_topup_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # debt
    debt_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    upcoming_noticed_for: Mapped[str | None] = mapped_column(String(32), nullable=True)  # period key
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Run(Base):
    """One charge of a subscription for one period (unique per subscription and period)."""

    __tablename__ = "recurring_runs"
    __table_args__ = (
        UniqueConstraint("subscription_id", "period_key"),
        Index(
            "ix_recurring_runs_work",
            "due_at",
            postgresql_where=text("status IN ('pending', 'running')"),
            sqlite_where=text("status IN ('pending', 'running')"),
        ),
        Index("ix_recurring_runs_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("recurring_subscriptions.id"), index=True)
    period_key: Mapped[str] = mapped_column(String(32))  # the local date (or instant) of the period
    scheduled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # when it was meant to run
    state: Mapped[str] = mapped_column(String(24), default="due")
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # known once decided
    observed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # balance / debt seen
    debit_key: Mapped[str] = mapped_column(String(64), unique=True)
    debit_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    refund_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    refund_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True, index=True)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # job columns (paymux.worker.jobs): the executor claims due pending/running runs under a lease
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    final_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Event(Base):
    """A balance or debt pushed by a provider or a channel (``POST /api/v1/events``)."""

    __tablename__ = "recurring_events"
    __table_args__ = (UniqueConstraint("agent_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    key: Mapped[str] = mapped_column(String(64))  # the sender's idempotency key
    kind: Mapped[str] = mapped_column(String(16))  # balance | debt
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    account: Mapped[str] = mapped_column(String(64))
    value: Mapped[int] = mapped_column(BigInteger)  # minor units of currency
    currency: Mapped[str] = mapped_column(String(3))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
