"""Reconciliation tables: column mappings per provider, reconciliations, their lines, scheduled fetches."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

# classes of a line
MATCHED = "matched"
AMOUNT_DIFFERS = "amount_differs"
STATUS_DIFFERS = "status_differs"
MISSING_OURS = "missing_ours"  # the provider has it, we do not
MISSING_THEIRS = "missing_theirs"  # our final payment of the period is not in their register
DUPLICATE = "duplicate"  # the same transaction id again in their register
CLASSES = (MATCHED, AMOUNT_DIFFERS, STATUS_DIFFERS, MISSING_OURS, MISSING_THEIRS, DUPLICATE)
DISCREPANCIES = CLASSES[1:]

# resolutions
POSTED = "posted"  # the missing (or failed on our side) payment was booked as succeeded
CANCELLED = "cancelled"  # our erroneous payment was cancelled, its entries reversed
ACCEPTED = "accepted"  # the difference was accepted as it is, with a reason
RESOLUTIONS = (POSTED, CANCELLED, ACCEPTED)

FETCH_STATUSES = ("pending", "running", "done", "failed")


class ReconciliationMapping(Base):
    """How a provider's register is read (``config``: a validated ``MappingConfig``)."""

    __tablename__ = "reconciliation_mappings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reconciliation(Base):
    """One provider register matched against our payments of a period (local days of the provider)."""

    __tablename__ = "reconciliations"
    __table_args__ = (Index("ix_reconciliations_provider_created", "provider_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    date_from: Mapped[dt.date] = mapped_column(Date)
    date_to: Mapped[dt.date] = mapped_column(Date)
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))  # upload | ftp | sftp
    file_name: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(8))
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_sha256: Mapped[str] = mapped_column(String(64))
    id_kind: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger, default=0)  # lines read from their file
    counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # class -> lines
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconciliationLine(Base):
    """A line of their register (``line_no``) or one of our payments absent from it, and its class.

    ``resolution`` is set once (an update guarded by ``resolution IS NULL``), so a second click on the
    same discrepancy does nothing.
    """

    __tablename__ = "reconciliation_lines"
    __table_args__ = (
        Index("ix_reconciliation_lines_kind", "reconciliation_id", "kind", "id"),
        Index("ix_reconciliation_lines_payment", "reconciliation_id", "payment_id"),
        Index("ix_reconciliation_lines_ref", "reconciliation_id", "txn_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reconciliation_id: Mapped[int] = mapped_column(ForeignKey("reconciliations.id"))
    line_no: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    txn_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    payment_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    provider_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    our_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    provider_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    our_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    provider_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    account: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note: Mapped[str | None] = mapped_column(String(300), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_payment_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ReconciliationFetch(Base):
    """A scheduled fetch of a provider's register for one local day (claimed like register tasks)."""

    __tablename__ = "reconciliation_fetches"
    __table_args__ = (
        UniqueConstraint("provider_id", "period_key"),
        Index("ix_reconciliation_fetches_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    period_key: Mapped[str] = mapped_column(String(16))  # the provider's local day, 2026-11-21
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reconciliation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
