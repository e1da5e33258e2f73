"""Catalog tables: providers, services, channels and their groups, agents."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

SETTLEMENT_MODES = ("prepaid", "postpaid")
CHANNEL_KINDS = (
    "atm",
    "terminal",
    "pos",
    "internet_bank",
    "mobile_bank",
    "cashier",
    "payment_link",
    "billing",
    "gateway",
)
SIGNING_MODES = ("none", "hmac", "rsa")
STRATEGIES = ("priority", "cheapest", "weighted")


class Provider(Base):
    """A supplier the hub delivers payments to (payment system or direct service provider)."""

    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    settlement: Mapped[str] = mapped_column(String(16), default="postpaid")
    # currency -> minor units the deposit of a prepaid provider may go below zero
    overdraft: Mapped[dict[str, int]] = mapped_column(Json, default=dict)
    # circuit breaker: window_seconds, min_calls, failure_rate_percent, open_seconds
    breaker: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Service(Base):
    """What is paid for: an operator's top-up, an electricity bill."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), default="other")
    currency: Mapped[str] = mapped_column(String(3))
    account_pattern: Mapped[str] = mapped_column(String(200), default=r"^.{1,64}$")
    account_hint: Mapped[str | None] = mapped_column(String(200), nullable=True)
    min_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # extra fields: [{"name": ..., "pattern": ..., "required": bool}]
    fields: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    lifetime_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # paid again every so many days (a phone, a utility bill): a one-off payment with a customer
    # reference is reminded one period later (hidden subscriptions, paymux.recurring.reminders)
    periodic_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    project: Mapped[str | None] = mapped_column(String(64), nullable=True)  # a report dimension
    strategy: Mapped[str] = mapped_column(String(16), default="priority")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChannelGroup(Base):
    __tablename__ = "channel_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class Agent(Base):
    """An agent or dealer that owns channels and earns commission."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # a staff user (users belong to organizations, which may be agents': the constraint is added after)
    manager_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", use_alter=True, name="fk_agents_manager_id_users"), nullable=True
    )


class Channel(Base):
    """A point of sale that sends payments through the channel API."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("channel_groups.id"), nullable=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    manager_id: Mapped[int | None] = mapped_column(  # a staff user, else the agent's manager
        ForeignKey("users.id", use_alter=True, name="fk_channels_manager_id_users"), nullable=True
    )
    signing: Mapped[str] = mapped_column(String(8), default="none")
    signing_required: Mapped[bool] = mapped_column(Boolean, default=False)
    hmac_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rsa_public_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
