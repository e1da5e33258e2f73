"""Cash desk tables: desks and their cashiers, cash days, cashier operations, system operations
(maker-checker) and customers' redeem requests.

Cash itself is not stored here: a desk's cash in each currency is ledger account ``cash_desk``/desk
id/currency, and every movement of cash is one balanced journal entry (``paymux.cashdesks.service``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

DAY_STATES = ("open", "closed", "accepted")
CASH_OPERATION_TYPES = ("topup", "withdrawal", "reversal", "redeem_payout")
SYSTEM_OPERATION_TYPES = ("cash_input", "collection", "investment")
SYSTEM_STATES = ("pending", "approved", "rejected")
REDEEM_METHODS = ("cash", "bank_transfer")
REDEEM_STATES = ("pending", "approved", "sent", "paid", "cancelled")


class CashDesk(Base):
    """A cash desk of an organization; ``currencies`` the ISO codes of the cash it holds."""

    __tablename__ = "cash_desks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    currencies: Mapped[list[str]] = mapped_column(Json, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CashDeskCashier(Base):
    """A user who may work at a desk."""

    __tablename__ = "cash_desk_cashiers"
    __table_args__ = (UniqueConstraint("desk_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    desk_id: Mapped[int] = mapped_column(ForeignKey("cash_desks.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CashDay(Base):
    """A desk's working day: opened with a count of the cash, closed with another.

    Counts, book balances and differences are ``{currency: minor units}``. ``open_desk_id`` is the
    desk's id while the day is open and null after: unique, so a desk has one open day at most.
    ``open`` -> ``closed`` (by the cashier) -> ``accepted`` (by an accountant); a closed day is final.
    """

    __tablename__ = "cash_days"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    desk_id: Mapped[int] = mapped_column(ForeignKey("cash_desks.id"), index=True)
    open_desk_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    opened_by: Mapped[str] = mapped_column(String(100))
    opened_by_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    opening_count: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    opening_book: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    closed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closing_count: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    closing_book: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    difference: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    accepted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accept_note: Mapped[str | None] = mapped_column(String(500), nullable=True)


class CashOperation(Base):
    """A cashier's operation in a day: a cash top-up or withdrawal of a wallet, the payout of a
    redeem request, or the reversal of one of them (``reverses_id``, unique: once).

    ``(desk_id, idempotency_key)`` is unique; ``request_hash`` the SHA-256 of the request that made
    it. ``wallet_operation_id`` the wallet operation it made; ``entry_id`` its cash entry.
    ``state`` ``done`` or ``failed`` (with ``problem``, replayed as is)."""

    __tablename__ = "cash_operations"
    __table_args__ = (
        UniqueConstraint("desk_id", "idempotency_key"),
        Index("ix_cash_operations_desk_time", "desk_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    desk_id: Mapped[int] = mapped_column(ForeignKey("cash_desks.id"))
    day_id: Mapped[int] = mapped_column(ForeignKey("cash_days.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(16), default="done")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_customers.id"), nullable=True)
    wallet_id: Mapped[int | None] = mapped_column(ForeignKey("wallets.id"), nullable=True)
    wallet_operation_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_operations.id"), nullable=True)
    redeem_request_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    reverses_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # the cash that moved (minor units)
    currency: Mapped[str] = mapped_column(String(3))
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    cash_delta: Mapped[int] = mapped_column(BigInteger, default=0)  # + into the desk, - out of it
    document: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    problem: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    cashier: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CashSystemOperation(Base):
    """Cash input, collection or investment: proposed by an accountant, decided by someone else
    (a CFO), posted on approval."""

    __tablename__ = "cash_system_operations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    desk_id: Mapped[int] = mapped_column(ForeignKey("cash_desks.id"), index=True)
    day_id: Mapped[int | None] = mapped_column(ForeignKey("cash_days.id"), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_by_key: Mapped[str] = mapped_column(String(100))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)


class RedeemRequest(Base):
    """A customer's request to take e-money out by cash or bank transfer. The amount is held
    (``hold_entry_id``) from the request until it is paid (cash, at a desk), sent (bank transfer:
    ``order_number``) or cancelled (given back)."""

    __tablename__ = "redeem_requests"
    __table_args__ = (UniqueConstraint("channel_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"), index=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    method: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    iban: Mapped[str | None] = mapped_column(String(34), nullable=True)
    beneficiary: Mapped[str | None] = mapped_column(String(140), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    order_number: Mapped[str | None] = mapped_column(String(35), nullable=True, unique=True)
    hold_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the pain.001 file a sent bank transfer went in (its MsgId), by whom and when (the file's time)
    transfer_batch: Mapped[str | None] = mapped_column(String(35), nullable=True, index=True)
    sent_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
