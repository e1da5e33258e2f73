"""The double-entry ledger: accounts, journal entries and their append-only postings."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, UTCDateTime, utcnow

ACCOUNT_KINDS = (
    "provider_deposit",  # prepaid provider: our money held by the provider (asset, debit balance)
    "provider_payable",  # postpaid provider: what we owe the provider (liability, credit balance)
    "provider_remuneration",  # remuneration the provider owes us (asset)
    "channel_collected",  # money a channel/agent collected from payers and owes us (asset)
    "channel_commission",  # commission we owe the channel's dealer (liability)
    "fees_unearned",  # payer fees of payments not yet final (liability)
    "revenue_fees",
    "revenue_remuneration",
    "commission_expense",
    "bank",  # the operator's bank account (source of provider top-ups)
    "biller_collected",  # money collected for a biller, held on the operator's account (asset)
    "biller_payable",  # what we owe a biller: its collections less fees, not paid out yet (liability)
    "biller_refund_hold",  # payments an invoice could not take, held for a refund decision (liability)
    "revenue_biller_fees",  # the billers' fixed fees per payment (revenue)
    "wallet",  # a customer's e-money wallet (paymux.wallets), owner = wallet id; debit > 0 = the customer's
    "emoney_float",  # an issuer's float, owner = issuer id: minus what it has emitted and not redeemed
    "wallet_fees",  # fees earned in an issuer's unit, owner = issuer id
    "wallet_hold",  # e-money held for service payments in flight, owner = issuer id
    "cash_desk",  # cash held at a cash desk (paymux.cashdesks), owner = desk id (asset, debit > 0)
    "cash_difference",  # surpluses (credit) and shortages (debit) found when a desk's cash is counted
    "cash_in_transit",  # cash collected from desks and not yet invested in one (owner 0)
    "cash_input",  # the source of cash put into the system (owner 0): minus what was put in
    "emoney_backing",  # money taken for an issuer's e-money at desks or paid out for it, owner = issuer id
    "redeem_hold",  # e-money held for customers' redeem requests, owner = issuer id
)


class Account(Base):
    """An account in one currency. ``balance`` is the signed sum of its postings (debit > 0)."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("kind", "owner_id", "currency"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[int] = mapped_column(BigInteger, default=0)  # provider/channel/agent id, 0 = system
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payment_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    memo: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Posting(Base):
    """One line of a journal entry. Never updated or deleted; a reversal is a new entry."""

    __tablename__ = "postings"
    __table_args__ = (Index("ix_postings_account_time", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TopUp(Base):
    """A recorded top-up of a prepaid provider's deposit; ``reference`` makes it idempotent."""

    __tablename__ = "topups"
    __table_args__ = (UniqueConstraint("provider_id", "reference"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(100))
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
