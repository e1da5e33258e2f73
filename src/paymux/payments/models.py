"""Payments and the attempts made to deliver them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

STATUSES = ("accepted", "processing", "succeeded", "failed", "cancelled")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id"),
        UniqueConstraint("provider_id", "provider_txn_id"),
        # due work: only unfinished payments carry next_attempt_at
        Index(
            "ix_payments_due",
            "next_attempt_at",
            postgresql_where=text("next_attempt_at IS NOT NULL"),
            sqlite_where=text("next_attempt_at IS NOT NULL"),
        ),
        Index("ix_payments_created", "created_at"),
        # final payments by the time they became final: registers, debts, statements, reports
        Index(
            "ix_payments_final",
            "final_at",
            postgresql_where=text("final_at IS NOT NULL"),
            sqlite_where=text("final_at IS NOT NULL"),
        ),
        Index("ix_payments_service_created", "service_id", "created_at"),
        # final payments naming a customer: the hidden-subscription sweep (paymux.recurring.reminders)
        Index(
            "ix_payments_customer_final",
            "final_at",
            "id",
            postgresql_where=text("customer IS NOT NULL AND final_at IS NOT NULL"),
            sqlite_where=text("customer IS NOT NULL AND final_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    external_id: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"))
    account: Mapped[str] = mapped_column(String(64), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)  # delivered to the provider
    fee: Mapped[int] = mapped_column(BigInteger)  # charged to the payer on top
    total: Mapped[int] = mapped_column(BigInteger)  # amount + fee, collected by the channel
    remuneration: Mapped[int] = mapped_column(BigInteger, default=0)
    commission: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_versions.id"), nullable=True)
    remuneration_tariff_id: Mapped[int | None] = mapped_column(
        ForeignKey("tariff_versions.id"), nullable=True
    )
    commission_tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_versions.id"), nullable=True)
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    customer: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the agent's reference
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    provider_service_code: Mapped[str] = mapped_column(String(64))
    route_reason: Mapped[str] = mapped_column(Text, default="")
    tried_provider_ids: Mapped[list[int]] = mapped_column(Json, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failovers: Mapped[int] = mapped_column(Integer, default=0)
    # a pay request may have reached provider_id and no definitive answer is recorded yet:
    # only a status request to that same provider may settle it
    in_doubt: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    # a request may have left for provider_id under a lease that ran out (its worker paused or died):
    # the payment is settled there only (status, then the same pay), never rerouted, never failed
    # while that provider may still pay it
    provider_pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    provider_txn_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    final_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PaymentValues:
    """A payment's column values without ORM state (same attribute names as :class:`Payment`): a
    row a batch just inserted, built from the values written, or a row a claim read."""

    provider_txn_id = None
    error_code = None
    error_message = None
    final_at = None
    # the columns the ledger lines, the API view and a claim read (all set from the row's values)
    channel_id: int
    service_id: int
    provider_id: int
    in_doubt: bool
    provider_pinned: bool = False
    status: str = "accepted"
    currency: str
    amount: int
    fee: int
    total: int
    remuneration: int
    commission: int
    lease_owner: str | None = None

    def __init__(self, id: int, **values: Any) -> None:
        self.id = id
        self.__dict__.update(values)

    @classmethod
    def of_row(cls, names: Sequence[str], row: Sequence[Any]) -> PaymentValues:
        """From a row of ``names`` (which include ``id``)."""
        obj = cls.__new__(cls)
        obj.__dict__ = dict(zip(names, row, strict=True))
        return obj


class PaymentAttempt(Base):
    """One step (check, pay, status) sent to a provider for a payment, with the exchange."""

    __tablename__ = "payment_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    step: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    provider_txn_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    exchanges: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    elapsed_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the claim that sent it


class CheckIdBlock(Base):
    """A block of account-check transaction ids taken by one process (``paymux.payments.check_ids``).

    Rows are only ever added: a block's id is never given out twice, so neither are its check ids.
    """

    __tablename__ = "check_id_blocks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    taken_by: Mapped[str] = mapped_column(String(100))  # host and process id, for operators
