"""wallet payments: refunds point at the operation they refund; hub services paid from wallets

Revision ID: 0029
Revises: 0025
Create Date: 2026-12-07 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("wallet_operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_of_id", ID, nullable=True))
        batch_op.create_index(batch_op.f("ix_wallet_operations_refund_of_id"), ["refund_of_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_wallet_operations_refund_of_id_wallet_operations"),
            "wallet_operations",
            ["refund_of_id"],
            ["id"],
        )
    op.create_table(
        "wallet_service_payments",
        sa.Column("id", ID, nullable=False),
        sa.Column("operation_id", ID, nullable=False),
        sa.Column("service_id", sa.BigInteger(), nullable=False),
        sa.Column("service_code", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("due_at", WHEN, nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["wallet_operations.id"],
            name=op.f("fk_wallet_service_payments_operation_id_wallet_operations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_service_payments")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_wallet_service_payments_operation_id")),
    )
    with op.batch_alter_table("wallet_service_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_service_payments_due_at"), ["due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_wallet_service_payments_payment_id"), ["payment_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("wallet_service_payments")
    with op.batch_alter_table("wallet_operations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_wallet_operations_refund_of_id_wallet_operations"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_wallet_operations_refund_of_id"))
        batch_op.drop_column("refund_of_id")
