"""cash desks: desks, cashiers, cash days, cash and system operations, redeem requests

Revision ID: 0032
Revises: 0025
Create Date: 2026-12-07 19:13:39
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0032"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "cash_desks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "currencies",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_cash_desks_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_desks")),
        sa.UniqueConstraint("code", name=op.f("uq_cash_desks_code")),
    )
    with op.batch_alter_table("cash_desks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cash_desks_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "cash_days",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("desk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("open_desk_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("opened_by_id", sa.BigInteger(), nullable=True),
        sa.Column("opened_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "opening_count",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "opening_book",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.Column("closed_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "closing_count",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "closing_book",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "difference",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("accepted_by", sa.String(length=100), nullable=True),
        sa.Column("accepted_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("accept_note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["desk_id"], ["cash_desks.id"], name=op.f("fk_cash_days_desk_id_cash_desks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_days")),
        sa.UniqueConstraint("open_desk_id", name=op.f("uq_cash_days_open_desk_id")),
    )
    with op.batch_alter_table("cash_days", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cash_days_desk_id"), ["desk_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cash_days_state"), ["state"], unique=False)

    op.create_table(
        "cash_desk_cashiers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("desk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["desk_id"], ["cash_desks.id"], name=op.f("fk_cash_desk_cashiers_desk_id_cash_desks")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_cash_desk_cashiers_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_desk_cashiers")),
        sa.UniqueConstraint("desk_id", "user_id", name=op.f("uq_cash_desk_cashiers_desk_id_user_id")),
    )
    with op.batch_alter_table("cash_desk_cashiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cash_desk_cashiers_user_id"), ["user_id"], unique=False)

    op.create_table(
        "cash_system_operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("desk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.String(length=100), nullable=False),
        sa.Column("proposed_by_key", sa.String(length=100), nullable=False),
        sa.Column("proposed_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["day_id"], ["cash_days.id"], name=op.f("fk_cash_system_operations_day_id_cash_days")
        ),
        sa.ForeignKeyConstraint(
            ["desk_id"], ["cash_desks.id"], name=op.f("fk_cash_system_operations_desk_id_cash_desks")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_cash_system_operations_entry_id_journal_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_system_operations")),
    )
    with op.batch_alter_table("cash_system_operations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cash_system_operations_desk_id"), ["desk_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cash_system_operations_state"), ["state"], unique=False)

    op.create_table(
        "redeem_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("beneficiary", sa.String(length=140), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("order_number", sa.String(length=35), nullable=True),
        sa.Column("hold_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("entry_id", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_redeem_requests_channel_id_channels")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_redeem_requests_customer_id_wallet_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_redeem_requests_hold_entry_id_journal_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_redeem_requests_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redeem_requests")),
        sa.UniqueConstraint(
            "channel_id", "idempotency_key", name=op.f("uq_redeem_requests_channel_id_idempotency_key")
        ),
        sa.UniqueConstraint("order_number", name=op.f("uq_redeem_requests_order_number")),
    )
    with op.batch_alter_table("redeem_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redeem_requests_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_redeem_requests_state"), ["state"], unique=False)

    op.create_table(
        "cash_operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("desk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("wallet_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("wallet_operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("redeem_request_id", sa.BigInteger(), nullable=True),
        sa.Column("reverses_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("cash_delta", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "problem",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("cashier", sa.String(length=100), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_cash_operations_customer_id_wallet_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["day_id"], ["cash_days.id"], name=op.f("fk_cash_operations_day_id_cash_days")
        ),
        sa.ForeignKeyConstraint(
            ["desk_id"], ["cash_desks.id"], name=op.f("fk_cash_operations_desk_id_cash_desks")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_cash_operations_entry_id_journal_entries")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_cash_operations_wallet_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_operation_id"],
            ["wallet_operations.id"],
            name=op.f("fk_cash_operations_wallet_operation_id_wallet_operations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_operations")),
        sa.UniqueConstraint(
            "desk_id", "idempotency_key", name=op.f("uq_cash_operations_desk_id_idempotency_key")
        ),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_cash_operations_reverses_id")),
    )
    with op.batch_alter_table("cash_operations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cash_operations_day_id"), ["day_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cash_operations_redeem_request_id"), ["redeem_request_id"], unique=False
        )
        batch_op.create_index("ix_cash_operations_desk_time", ["desk_id", "created_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("cash_operations", schema=None) as batch_op:
        batch_op.drop_index("ix_cash_operations_desk_time")
        batch_op.drop_index(batch_op.f("ix_cash_operations_redeem_request_id"))
        batch_op.drop_index(batch_op.f("ix_cash_operations_day_id"))

    op.drop_table("cash_operations")
    with op.batch_alter_table("redeem_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redeem_requests_state"))
        batch_op.drop_index(batch_op.f("ix_redeem_requests_customer_id"))

    op.drop_table("redeem_requests")
    with op.batch_alter_table("cash_system_operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cash_system_operations_state"))
        batch_op.drop_index(batch_op.f("ix_cash_system_operations_desk_id"))

    op.drop_table("cash_system_operations")
    with op.batch_alter_table("cash_desk_cashiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cash_desk_cashiers_user_id"))

    op.drop_table("cash_desk_cashiers")
    with op.batch_alter_table("cash_days", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cash_days_state"))
        batch_op.drop_index(batch_op.f("ix_cash_days_desk_id"))

    op.drop_table("cash_days")
    with op.batch_alter_table("cash_desks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cash_desks_organization_id"))

    op.drop_table("cash_desks")
