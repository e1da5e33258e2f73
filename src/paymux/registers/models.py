"""Register tables: templates per provider, sending tasks, and the stored files (in chunks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow
from paymux.payments.models import Payment

TASK_STATUSES = ("pending", "running", "done", "failed")
KINDS = ("daily", "monthly")
FORMATS = ("xlsx", "csv", "dbf")


class RegisterTemplate(Base):
    """How one kind of register is built for a provider, where it goes and when.

    ``config`` holds the validated :class:`paymux.registers.schemas.TemplateConfig` (columns, format
    options, name patterns, encryption, deliveries, schedule, retries).
    """

    __tablename__ = "register_templates"
    __table_args__ = (UniqueConstraint("provider_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegisterTask(Base):
    """One register to build and send: a template and a period (``run`` 0 is the scheduled one).

    Claimed like payments: ``due_at`` is when it is due; a claim moves it a lease ahead, so a task
    whose worker died is claimed again once the lease runs out.
    """

    __tablename__ = "register_tasks"
    __table_args__ = (
        UniqueConstraint("template_id", "period_key", "run"),
        Index("ix_register_tasks_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("register_templates.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    period_key: Mapped[str] = mapped_column(String(16))  # 2026-11-21 or 2026-11
    run: Mapped[int] = mapped_column(Integer, default=0)
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deliver: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    file_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(500), nullable=True)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    totals: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # destination index (str) -> ISO time it was delivered; a retry skips these
    delivered: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    built_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100), default="scheduler")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RegisterFileChunk(Base):
    """A piece of a task's built file, kept in the database so every node can send or serve it."""

    __tablename__ = "register_file_chunks"

    task_id: Mapped[int] = mapped_column(ForeignKey("register_tasks.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# registers read a provider's payments by (final_at, id) within a period (migration 0004)
Index("ix_payments_provider_final", Payment.provider_id, Payment.final_at, Payment.id)
