"""E-money tables: issuers, wallet customers, wallets, operations, limits and the customer-token key.

Balances are not stored here: each wallet and each issuer's float is an account of the double-entry
ledger (``paymux.ledger``), and every operation that moves value is one balanced journal entry.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

ISSUER_KINDS = ("emoney", "units", "points")
CUSTOMER_KINDS = ("individual", "merchant")
IDENTIFICATION_LEVELS = ("unidentified", "identified")
STATUSES = ("active", "blocked")
OPERATION_TYPES = (
    "topup",
    "withdrawal",
    "p2p",
    "merchant_payment",
    "service_payment",
    "exchange",
    "cashback",
    "refund",
)
# the types this version carries out (``cashback`` is reserved)
SUPPORTED_TYPES = ("topup", "withdrawal", "p2p", "exchange", "merchant_payment", "service_payment", "refund")
OPERATION_STATES = ("created", "pending_review", "processing", "done", "rejected", "failed")
LIMIT_ACTIONS = ("refuse", "review")
FRAUD_RULE_KINDS = ("velocity", "amount", "new_payee")


class Issuer(Base):
    """A unit of value: e-money 1:1 with an ISO 4217 currency, units, or bonus points.

    ``currency`` is the ISO code (e-money) or a three-letter unit code (units, points); ``precision``
    its minor digits. ``emission_limit`` caps what may be outstanding (None: no cap). ``fee_rules``
    maps an operation type to a tariff rule in storage form (``paymux.tariffs.calc.rule_to_json``).
    ``exchange_spread_percent`` is taken off the system rate when a customer exchanges *into* this
    issuer's unit. The float account is ledger account ``emoney_float``/issuer id/currency.
    """

    __tablename__ = "wallet_issuers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    precision: Mapped[int] = mapped_column(Integer)
    emission_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    float_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    fee_rules: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    exchange_spread_percent: Mapped[str] = mapped_column(String(20), default="0")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletCustomer(Base):
    """A holder of wallets, signed up by a channel under the channel's own reference for them."""

    __tablename__ = "wallet_customers"
    __table_args__ = (UniqueConstraint("channel_id", "external_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    agent_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    external_ref: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default="individual")
    identification: Mapped[str] = mapped_column(String(16), default="unidentified")
    status: Mapped[str] = mapped_column(String(16), default="active")
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Wallet(Base):
    """A customer's account in one issuer's unit; its balance is ledger account ``account_id``.
    ``overdraft`` (minor units, >= 0) is how far below zero it may go."""

    __tablename__ = "wallets"
    __table_args__ = (UniqueConstraint("customer_id", "issuer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"))
    issuer_id: Mapped[int] = mapped_column(ForeignKey("wallet_issuers.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    overdraft: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletOperation(Base):
    """One typed operation. ``(channel_id, idempotency_key)`` is unique; ``request_hash`` is the
    SHA-256 of the request that made it (the same key with another request is refused).
    ``amount`` is in the source unit (``currency``), ``to_amount`` in the destination's (equal to
    ``amount`` except for exchanges); ``fee`` in the source unit. ``problem`` keeps the refusal of a
    failed or rejected operation (replayed as it was)."""

    __tablename__ = "wallet_operations"
    __table_args__ = (
        UniqueConstraint("channel_id", "idempotency_key"),
        Index("ix_wallet_operations_customer_day", "customer_id", "type", "issuer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default="created")
    customer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"))
    issuer_id: Mapped[int] = mapped_column(ForeignKey("wallet_issuers.id"))  # the source unit's issuer
    from_wallet_id: Mapped[int | None] = mapped_column(ForeignKey("wallets.id"), nullable=True, index=True)
    to_wallet_id: Mapped[int | None] = mapped_column(ForeignKey("wallets.id"), nullable=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    to_amount: Mapped[int] = mapped_column(BigInteger)
    to_currency: Mapped[str] = mapped_column(String(3))
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    rate: Mapped[str | None] = mapped_column(String(60), nullable=True)
    limit_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the anti-fraud rule that held it (``wallet_fraud_rules``), and why it waits, as the reviewer reads it
    fraud_rule_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    hold_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # an anti-fraud block on this one operation: a held operation that is blocked cannot be approved
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), nullable=True, index=True)
    problem: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    review_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # a refund: the operation it gives money back for (a merchant or a service payment)
    refund_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("wallet_operations.id"), nullable=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletServicePayment(Base):
    """A hub service paid from a wallet: the job that carries operation ``operation_id`` (type
    ``service_payment``, its money held) through the payment pipeline.

    ``status`` is the job's (``pending``/``running`` while it works, ``done`` at the end; ``due_at``,
    ``lease_owner``, ``attempts`` as in ``paymux.worker.jobs``); ``outcome`` how it ended: ``paid``
    (the hold captured) or ``refunded`` (the hold given back by the refund operation). The payment is
    accepted under the customer's channel with ``external_id = wallet-<operation id>``; ``total`` is
    what the wallet pays (the service amount plus the hub's fee), in the service's currency."""

    __tablename__ = "wallet_service_payments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("wallet_operations.id"), unique=True)
    service_id: Mapped[int] = mapped_column(BigInteger)
    service_code: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    amount: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletLimit(Base):
    """A limit on one operation type of one issuer for customers of one identification level.

    Amounts are minor units of the issuer. ``min_amount``/``max_amount`` bound one operation;
    ``daily_count``/``daily_amount`` what one customer initiates in a UTC day (done or waiting for
    review). ``action``: ``refuse`` the operation over the limit, or hold it for ``review``.
    """

    __tablename__ = "wallet_limits"
    __table_args__ = (UniqueConstraint("issuer_id", "type", "identification", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("wallet_issuers.id"))
    type: Mapped[str] = mapped_column(String(20))
    identification: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    min_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    daily_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    daily_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    action: Mapped[str] = mapped_column(String(16), default="refuse")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletFraudRule(Base):
    """An anti-fraud rule on one operation type (of one issuer, or of every issuer when the rule has
    no amount): an operation that matches it waits for review as an application, the rule named.

    ``kind``: ``velocity`` (more than ``max_count`` operations, or more than ``max_amount`` in total,
    by one customer within ``window_minutes``), ``amount`` (one operation over ``max_amount``),
    ``new_payee`` (a payment to a customer this one never paid before). Amounts in minor units of the
    issuer. A disabled rule matches nothing.
    """

    __tablename__ = "wallet_fraud_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(20))
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_issuers.id"), nullable=True)
    max_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    window_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WalletTokenKey(Base):
    """The secret that signs customer tokens when ``PAYMUX_WALLETS_TOKEN_SECRET`` is not set: made
    once, shared by every node through the database."""

    __tablename__ = "wallet_token_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
