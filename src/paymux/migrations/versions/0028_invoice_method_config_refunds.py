"""billers.method_config (a biller's own settings of its payment methods) and invoice_refunds (the
refund decisions of payments kept in the refund hold)

Revision ID: 0028
Revises: 0025
Create Date: 2026-12-07 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = paymux.db.base.UTCDateTime(timezone=True)
ID = paymux.db.base.BigId
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("billers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("method_config", JSON, nullable=False, server_default="{}"))
    op.create_table(
        "invoice_refunds",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("payment_id", ID, nullable=False),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("biller_id", ID, nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("amount", ID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("number", sa.String(length=35), nullable=False),
        sa.Column("processor_ref", sa.String(length=200), nullable=True),
        sa.Column("payee", JSON, nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("entry_id", ID, nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["invoice_payments.id"]),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.ForeignKeyConstraint(["biller_id"], ["billers.id"]),
        sa.ForeignKeyConstraint(["entry_id"], ["journal_entries.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("invoice_refunds", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_refunds_invoice_id", ["invoice_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("invoice_refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_refunds_invoice_id")
    op.drop_table("invoice_refunds")
    with op.batch_alter_table("billers", schema=None) as batch_op:
        batch_op.drop_column("method_config")
