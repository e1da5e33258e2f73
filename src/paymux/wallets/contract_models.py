"""E-money contracts and cashback tables: contract versions (fees and limits for a customer or a group
of customers in one issuer's unit), customers' contract groups, merchants' cashback profiles, the
cashback credited per operation, and the proposals (maker-checker) that create both.

Rows of ``wallet_contracts`` and ``wallet_cashback_profiles`` are never changed: a change is a new
version, effective from its own time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

CONTRACT_TYPES = ("topup", "withdrawal", "p2p", "merchant_payment", "exchange")
CASHBACK_MODES = ("percent", "fixed")
CASHBACK_FUNDING = ("merchant", "issuer")
DEFAULT_CASHBACK_TYPES = ("merchant_payment", "p2p")
PROPOSAL_KINDS = ("contract", "cashback")


class WalletCustomerGroup(Base):
    """The contract group a customer belongs to (at most one)."""

    __tablename__ = "wallet_customer_groups"

    customer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"), primary_key=True)
    group_code: Mapped[str] = mapped_column(String(32), index=True)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletContract(Base):
    """One version of a contract: for one customer or one group, in one issuer's unit.

    ``scope_key`` is ``<issuer id>:customer:<id>`` or ``<issuer id>:group:<code>``; versions of a
    scope replace each other from their ``effective_from``. ``terms`` maps an operation type to
    ``{"fee": <tariff rule, storage form, minor units> | null, "limits": [<limit>, ...]}`` where a
    limit is ``{"name", "identification" (null: every level), "min_amount", "max_amount",
    "daily_count", "daily_amount", "monthly_count", "monthly_amount", "action"}`` (amounts in minor
    units, null: no bound).
    """

    __tablename__ = "wallet_contracts"
    __table_args__ = (
        UniqueConstraint("scope_key", "version"),
        UniqueConstraint("scope_key", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("wallet_issuers.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_customers.id"), nullable=True)
    group_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    scope_key: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    terms: Mapped[dict[str, Any]] = mapped_column(Json)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    proposal_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletCashbackProfile(Base):
    """One version of a merchant's cashback profile.

    ``mode`` ``percent`` (of the operation's amount, rounded down) or ``fixed`` (minor units of the
    paying issuer per operation); ``per_operation_cap`` and ``monthly_cap`` (per payer and calendar
    month, UTC) in minor units of the paying issuer; ``funding`` ``merchant`` (from the merchant's
    wallet) or ``issuer`` (emitted from the issuer's float); ``operation_types`` the operation types
    that earn it. A version with ``enabled`` false ends the merchant's cashback.
    """

    __tablename__ = "wallet_cashback_profiles"
    __table_args__ = (
        UniqueConstraint("merchant_id", "version"),
        UniqueConstraint("merchant_id", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("wallet_issuers.id"))
    mode: Mapped[str] = mapped_column(String(16))
    percent: Mapped[str | None] = mapped_column(String(20), nullable=True)
    fixed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    per_operation_cap: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    monthly_cap: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    funding: Mapped[str] = mapped_column(String(16))
    operation_types: Mapped[list[str]] = mapped_column(Json)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    proposal_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletCashback(Base):
    """The cashback of one operation (``operation_id`` unique: one per operation, ever), credited by
    the ``cashback`` operation ``cashback_operation_id``; ``state`` is that operation's."""

    __tablename__ = "wallet_cashbacks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("wallet_operations.id"), unique=True)
    cashback_operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("wallet_operations.id"), nullable=True
    )
    profile_id: Mapped[int] = mapped_column(ForeignKey("wallet_cashback_profiles.id"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"))
    payer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"))
    issuer_id: Mapped[int] = mapped_column(ForeignKey("wallet_issuers.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WalletContractProposal(Base):
    """A proposed contract version or cashback profile version (``kind``), waiting for (or given) a
    decision by someone other than its proposer. ``payload`` is the request as proposed;
    ``result_id`` the version approval created."""

    __tablename__ = "wallet_contract_proposals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    scope: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_by_key: Mapped[str] = mapped_column(String(100))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    result_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    effective_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
