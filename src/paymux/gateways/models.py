"""Inbound gateways and the exchanges they had with payment systems."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

GATEWAY_PROTOCOLS = ("osmp",)


class InboundGateway(Base):
    """A payment system that sends us payments over its protocol; it pays through its channel."""

    __tablename__ = "inbound_gateways"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(16), default="osmp")
    # the catalog channel (kind "gateway") its payments belong to: tariffs, ledger, idempotency
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # services, limits, parameters, network and certificate rules (paymux.gateways.schemas)
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    login: Mapped[str | None] = mapped_column(String(100), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)  # argon2id
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InboundExchange(Base):
    """One request a payment system made to a gateway and our answer (secrets masked)."""

    __tablename__ = "inbound_exchanges"
    __table_args__ = (Index("ix_inbound_exchanges_gateway_txn", "gateway_id", "txn_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("inbound_gateways.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True, index=True)
    command: Mapped[str] = mapped_column(String(16))
    txn_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # parameters, secrets masked
    response: Mapped[str] = mapped_column(Text)
    elapsed_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
