"""Settlement tables: providers' bank details, low-balance alerts, payment orders, bank statements."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

ORDER_STATUSES = ("created", "approved", "paid", "cancelled")
ALERT_STATUSES = ("pending", "running", "done", "failed")
LINE_STATUSES = ("order", "topup", "unmatched")


class SettlementDetails(Base):
    """How a provider is paid: bank details (IBAN/BIC or Russian account/BIK/INN) and settlement terms."""

    __tablename__ = "settlement_details"

    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), primary_key=True)
    beneficiary: Mapped[str] = mapped_column(String(200), default="")  # legal name on payments
    iban: Mapped[str | None] = mapped_column(String(34), nullable=True)
    bic: Mapped[str | None] = mapped_column(String(11), nullable=True)
    bank_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    account: Mapped[str | None] = mapped_column(String(34), nullable=True)  # Russian settlement account
    bik: Mapped[str | None] = mapped_column(String(9), nullable=True)
    corr_account: Mapped[str | None] = mapped_column(String(20), nullable=True)
    inn: Mapped[str | None] = mapped_column(String(12), nullable=True)
    kpp: Mapped[str | None] = mapped_column(String(9), nullable=True)
    # True: we pay the provider its payments minus our remuneration; False: remuneration is invoiced apart
    withhold_remuneration: Mapped[bool] = mapped_column(Boolean, default=True)
    purpose: Mapped[str] = mapped_column(String(210), default="")  # text before the order's own wording
    updated_by: Mapped[str] = mapped_column(String(100), default="system")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BalanceAlertRule(Base):
    """A low-balance threshold of a prepaid provider's deposit in one currency, and where to tell.

    ``armed`` is true while the balance is at or above the threshold: the first check that sees it
    below disarms the rule and queues one alert; a check that sees it back above re-arms it.
    """

    __tablename__ = "balance_alert_rules"
    __table_args__ = (
        Index("uq_balance_alert_rules_provider_currency", "provider_id", "currency", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    threshold: Mapped[int] = mapped_column(BigInteger)
    emails: Mapped[list[str]] = mapped_column(Json, default=list)
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(200), nullable=True)  # HMAC key (sent never)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    armed: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str] = mapped_column(String(100), default="system")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BalanceAlert(Base):
    """One crossing below a threshold: a delivery task claimed by the alert worker, retried until done."""

    __tablename__ = "balance_alerts"
    __table_args__ = (Index("ix_balance_alerts_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("balance_alert_rules.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger)
    threshold: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    # "email" / "webhook" -> UTC ISO time delivered (never sent twice)
    delivered: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentOrder(Base):
    """Money we send a postpaid provider for its debts of local days [period_start, period_end].

    created -> approved (by someone other than the creator) -> paid (statement match or by hand);
    created/approved -> cancelled. ``amount`` is what is sent: gross minus withheld remuneration.
    """

    __tablename__ = "payment_orders"
    __table_args__ = (
        # one live order per provider, currency and first day: a second click creates nothing
        Index(
            "uq_payment_orders_live_period",
            "provider_id",
            "currency",
            "period_start",
            unique=True,
            postgresql_where=text("status <> 'cancelled'"),
            sqlite_where=text("status <> 'cancelled'"),
        ),
        Index("ix_payment_orders_status", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(35), unique=True)  # our reference, also EndToEndId
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    payments: Mapped[int] = mapped_column(BigInteger, default=0)
    gross: Mapped[int] = mapped_column(BigInteger)
    remuneration: Mapped[int] = mapped_column(BigInteger, default=0)  # withheld (0 if not withheld)
    amount: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(210))
    payee: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # details as they were at creation
    status: Mapped[str] = mapped_column(String(16), default="created")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_by: Mapped[str | None] = mapped_column(String(100), nullable=True)  # user, or "statement"
    statement_line_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BankStatement(Base):
    """One imported bank statement file (camt.053 or 1CClientBankExchange)."""

    __tablename__ = "bank_statements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(255), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(34), default="")
    lines: Mapped[int] = mapped_column(Integer, default=0)
    new_lines: Mapped[int] = mapped_column(Integer, default=0)  # not seen in an earlier import
    matched: Mapped[int] = mapped_column(Integer, default=0)
    imported_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatementLine(Base):
    """One booked line of a statement. ``uid`` is unique: a line imported twice is stored and posted once."""

    __tablename__ = "statement_lines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("bank_statements.id"), index=True)
    uid: Mapped[str] = mapped_column(String(128), unique=True)
    direction: Mapped[str] = mapped_column(String(6))  # "debit" (money out of our account) / "credit"
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    booked_on: Mapped[dt.date] = mapped_column(Date)
    counterparty: Mapped[str] = mapped_column(String(200), default="")
    counterparty_account: Mapped[str] = mapped_column(String(34), default="")
    counterparty_bank: Mapped[str] = mapped_column(String(11), default="")  # BIC or BIK
    counterparty_inn: Mapped[str] = mapped_column(String(12), default="")
    reference: Mapped[str] = mapped_column(String(140), default="")  # end-to-end id / document number
    purpose: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="unmatched")
    order_id: Mapped[int | None] = mapped_column(ForeignKey("payment_orders.id"), nullable=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), nullable=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
