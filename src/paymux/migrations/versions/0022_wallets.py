"""e-money wallets: issuers, wallet customers, wallets, operations, limits, the customer-token key

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0022"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_token_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_token_keys")),
    )
    op.create_table(
        "wallet_issuers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("precision", sa.Integer(), nullable=False),
        sa.Column("emission_limit", sa.BigInteger(), nullable=True),
        sa.Column("float_account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "fee_rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("exchange_spread_percent", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["float_account_id"], ["accounts.id"], name=op.f("fk_wallet_issuers_float_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_issuers")),
        sa.UniqueConstraint("code", name=op.f("uq_wallet_issuers_code")),
    )
    op.create_table(
        "wallet_customers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("external_ref", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("identification", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_wallet_customers_channel_id_channels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_customers")),
        sa.UniqueConstraint(
            "channel_id", "external_ref", name=op.f("uq_wallet_customers_channel_id_external_ref")
        ),
    )
    with op.batch_alter_table("wallet_customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_customers_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_wallet_customers_phone"), ["phone"], unique=False)

    op.create_table(
        "wallet_limits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("identification", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("min_amount", sa.BigInteger(), nullable=True),
        sa.Column("max_amount", sa.BigInteger(), nullable=True),
        sa.Column("daily_count", sa.Integer(), nullable=True),
        sa.Column("daily_amount", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["wallet_issuers.id"], name=op.f("fk_wallet_limits_issuer_id_wallet_issuers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_limits")),
        sa.UniqueConstraint(
            "issuer_id",
            "type",
            "identification",
            "name",
            name=op.f("uq_wallet_limits_issuer_id_type_identification_name"),
        ),
    )
    op.create_table(
        "wallets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("overdraft", sa.BigInteger(), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_wallets_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["wallet_customers.id"], name=op.f("fk_wallets_customer_id_wallet_customers")
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["wallet_issuers.id"], name=op.f("fk_wallets_issuer_id_wallet_issuers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("customer_id", "issuer_id", name=op.f("uq_wallets_customer_id_issuer_id")),
    )
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallets_issuer_id"), ["issuer_id"], unique=False)

    op.create_table(
        "wallet_operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("from_wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("to_wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("to_amount", sa.BigInteger(), nullable=False),
        sa.Column("to_currency", sa.String(length=3), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.String(length=60), nullable=True),
        sa.Column("limit_id", sa.BigInteger(), nullable=True),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "problem",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("review_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_wallet_operations_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_wallet_operations_customer_id_wallet_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_wallet_operations_entry_id_journal_entries")
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["wallet_issuers.id"], name=op.f("fk_wallet_operations_issuer_id_wallet_issuers")
        ),
        sa.ForeignKeyConstraint(
            ["from_wallet_id"], ["wallets.id"], name=op.f("fk_wallet_operations_from_wallet_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["to_wallet_id"], ["wallets.id"], name=op.f("fk_wallet_operations_to_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_operations")),
        sa.UniqueConstraint(
            "channel_id", "idempotency_key", name=op.f("uq_wallet_operations_channel_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("wallet_operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wallet_operations_customer_day",
            ["customer_id", "type", "issuer_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_wallet_operations_from_wallet_id"), ["from_wallet_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_wallet_operations_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_wallet_operations_to_wallet_id"), ["to_wallet_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wallet_operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_operations_to_wallet_id"))
        batch_op.drop_index(batch_op.f("ix_wallet_operations_entry_id"))
        batch_op.drop_index(batch_op.f("ix_wallet_operations_from_wallet_id"))
        batch_op.drop_index("ix_wallet_operations_customer_day")

    op.drop_table("wallet_operations")
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallets_issuer_id"))

    op.drop_table("wallets")
    op.drop_table("wallet_limits")
    with op.batch_alter_table("wallet_customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_customers_phone"))
        batch_op.drop_index(batch_op.f("ix_wallet_customers_email"))

    op.drop_table("wallet_customers")
    op.drop_table("wallet_issuers")
    op.drop_table("wallet_token_keys")
