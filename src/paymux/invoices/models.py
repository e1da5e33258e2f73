"""Invoice collection tables: billers, their API keys, invoices, their changes (history and feed) and
the payments applied to them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

STATUSES = ("open", "partially_paid", "paid", "overdue", "cancelled", "refunded")
OPEN_STATUSES = ("open", "partially_paid", "overdue")


class Biller(Base):
    """An invoice issuer: its brand, accepted methods, collection account, webhook, reminder policy
    and the fixed per-transaction fee."""

    __tablename__ = "billers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # {"logo_url", "primary_color", "accent_color"}
    brand: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # {"legal_name", "registration_number", "vat_number", "address"}
    legal: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # {"email", "phone", "url"}
    support: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    methods: Mapped[list[str]] = mapped_column(Json, default=list)
    # {"holder", "iban", "bic", "bank_name", "account_number", "inn", "kpp", "correspondent_account"}
    account: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    reminder_days: Mapped[list[int]] = mapped_column(Json, default=list)  # relative to due: [-3, 0, 7, 14]
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")  # its days (reminders) are in this zone
    fee_amount: Mapped[int] = mapped_column(BigId, default=0)  # fixed fee per transaction, minor units
    fee_currency: Mapped[str] = mapped_column(String(3), default="EUR")
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(500), nullable=True)  # whsec_ (sealed)
    webhook_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # its own settings of its methods over PAYMUX_PAYMETHODS: {"card": {"merchant": ..., "secret": ...}};
    # secret-looking values sealed (``invoices.method_config``), masked in every read
    method_config: Mapped[dict[str, dict[str, str]]] = mapped_column(Json, default=dict, server_default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillerKey(Base):
    """A biller's API key, stored as its SHA-256 only (like channel keys)."""

    __tablename__ = "biller_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Invoice(Base):
    """One invoice of a biller; ``number`` is unique per biller and is the intake's idempotency key."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("biller_id", "number"),
        Index("ix_invoices_due", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    number: Mapped[str] = mapped_column(String(64))
    payer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payer_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    payer_phone: Mapped[str | None] = mapped_column(String(16), nullable=True)
    payer_language: Mapped[str] = mapped_column(String(8), default="en")
    amount: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    paid_amount: Mapped[int] = mapped_column(BigId, default=0)
    due_date: Mapped[dt.date] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(Json, nullable=True)
    reference: Mapped[str] = mapped_column(String(25))  # ISO 11649 RF creditor reference
    partial_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")
    link_token: Mapped[str] = mapped_column(String(64), unique=True)  # /pay/{token}
    body_hash: Mapped[str] = mapped_column(String(64))  # of the intake body: same body, same answer
    refund_review: Mapped[bool] = mapped_column(Boolean, default=False)  # over/late payment kept
    first_viewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # payment page
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvoiceChange(Base):
    """A change of an invoice: its status history (from, to, at, why) and, by ``id``, the biller's
    changes feed (``GET /api/v1/invoices/changes?after=<id>``)."""

    __tablename__ = "invoice_changes"
    __table_args__ = (
        Index("ix_invoice_changes_feed", "biller_id", "id"),
        Index("ix_invoice_changes_invoice", "invoice_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # None: created
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500), default="")
    paid_amount: Mapped[int] = mapped_column(BigId, default=0)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvoicePayment(Base):
    """A payment applied to an invoice; ``(method, method_reference)`` is unique: never twice."""

    __tablename__ = "invoice_payments"
    __table_args__ = (UniqueConstraint("method", "method_reference"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    method_reference: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    applied: Mapped[int] = mapped_column(BigId, default=0)  # what went to the invoice
    excess: Mapped[int] = mapped_column(BigId, default=0)  # over-payment or paid to a closed invoice
    refund_review: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


RECEIPT_STATUSES = ("waiting", "matched", "ignored")


class InvoiceReceipt(Base):
    """A credit line of an imported bank statement: matched to an invoice (paid through
    ``record_payment``), or waiting for a person to match or ignore it. ``uid`` is the line's identity
    in the bank's statements: a statement imported again adds nothing."""

    __tablename__ = "invoice_receipts"
    __table_args__ = (Index("ix_invoice_receipts_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uid: Mapped[str] = mapped_column(String(100), unique=True)
    method_reference: Mapped[str] = mapped_column(String(200))  # the bank's reference of the entry
    statement_format: Mapped[str] = mapped_column(String(16))
    account: Mapped[str] = mapped_column(String(35), default="")  # our account the money came to
    amount: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    booked_on: Mapped[dt.date] = mapped_column(Date)
    payer_name: Mapped[str] = mapped_column(String(200), default="")
    payer_account: Mapped[str] = mapped_column(String(34), default="")
    creditor_reference: Mapped[str] = mapped_column(String(35), default="")
    remittance: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), nullable=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_payments.id"), nullable=True)
    matched_by: Mapped[str | None] = mapped_column(String(100), nullable=True)  # how: "reference"...
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvoicePayout(Base):
    """What was sent to a biller for a day: its collections less the fees, not paid out before. One
    per biller, currency and day; ``entry_id`` is its ledger entry."""

    __tablename__ = "invoice_payouts"
    __table_args__ = (UniqueConstraint("biller_id", "currency", "payout_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(35), unique=True)  # the transfer's EndToEndId
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    payout_date: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigId)
    payee: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # the biller's account as it was
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


ATTEMPT_STATUSES = ("started", "pending", "approved", "declined", "expired")
ATTEMPT_OPEN = ("started", "pending")


class InvoiceAttempt(Base):
    """One try of the payer to pay an invoice by a method of the hosted page. ``reference`` (random,
    unique) names it to the method's processor, in the return URL and, as the payment's method
    reference, makes a confirmation apply once; ``processor_ref`` is the processor's own id."""

    __tablename__ = "invoice_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    processor_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="started")
    amount: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


REFUND_DECISIONS = ("refund", "release")
REFUND_CHANNELS = ("method", "payment_order", "biller")


class InvoiceRefund(Base):
    """The decision about what a payment left in the refund hold (an over-payment, a payment to a closed
    invoice): ``refund`` it to the payer (``channel`` ``method``: through the method's processor;
    ``payment_order``: a credit transfer to the payer's account, pain.001) or ``release`` it to the
    biller (``channel`` ``biller``: its next payout). One per payment (``payment_id`` unique: deciding
    again answers the decision made); ``entry_id`` is the ledger entry that empties the hold."""

    __tablename__ = "invoice_refunds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("invoice_payments.id"), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    number: Mapped[str] = mapped_column(String(35), unique=True)  # our reference (the EndToEndId)
    processor_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payee: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # the payer's account (orders)
    note: Mapped[str] = mapped_column(String(500), default="")
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


REMINDER_KINDS = ("policy", "requested", "manual")
REMINDER_STATUSES = ("pending", "sent", "skipped")


class InvoiceReminder(Base):
    """A reminder of an invoice to its payer (migration 0021): one of the biller's policy days
    (``policy``, key ``policy:<days from due>``), a day the payer asked for (``requested``, key
    ``requested:<date>``) or one sent now from the back office or the biller's API (``manual``, key
    ``manual:<date>``). ``(invoice_id, key)`` is unique: a policy day is reminded once, however often
    the worker runs. ``day`` is the biller's local day it is (or was) due; ``status`` ``pending``
    (requested, not due yet), ``sent`` (``notifications`` the ids of its e-mail and SMS) or
    ``skipped`` (with ``reason``: paid, cancelled, no address, another reminder that day)."""

    __tablename__ = "invoice_reminders"
    __table_args__ = (
        UniqueConstraint("invoice_id", "key"),
        Index("ix_invoice_reminders_due", "status", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(200), default="")
    notifications: Mapped[list[int]] = mapped_column(Json, default=list)
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InvoiceUploadMapping(Base):
    """A biller's named way of reading its invoice files (``config``: a validated
    :class:`paymux.invoices.upload.Mapping`), chosen by name at upload (migration 0027)."""

    __tablename__ = "invoice_upload_mappings"
    __table_args__ = (UniqueConstraint("biller_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    biller_id: Mapped[int] = mapped_column(ForeignKey("billers.id"))
    name: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = [
    "ATTEMPT_OPEN",
    "ATTEMPT_STATUSES",
    "RECEIPT_STATUSES",
    "REFUND_CHANNELS",
    "REFUND_DECISIONS",
    "REMINDER_KINDS",
    "REMINDER_STATUSES",
    "STATUSES",
    "Biller",
    "BillerKey",
    "Invoice",
    "InvoiceAttempt",
    "InvoiceChange",
    "InvoicePayment",
    "InvoicePayout",
    "InvoiceReceipt",
    "InvoiceRefund",
    "InvoiceReminder",
    "InvoiceUploadMapping",
]
