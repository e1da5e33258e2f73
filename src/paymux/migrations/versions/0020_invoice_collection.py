"""invoice collection: bank statement receipts (matched or waiting) and payouts to billers

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0020"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoice_receipts",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("uid", sa.String(length=100), nullable=False),
        sa.Column("method_reference", sa.String(length=200), nullable=False),
        sa.Column("statement_format", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=35), nullable=False),
        sa.Column("amount", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("payer_name", sa.String(length=200), nullable=False),
        sa.Column("payer_account", sa.String(length=34), nullable=False),
        sa.Column("creditor_reference", sa.String(length=35), nullable=False),
        sa.Column("remittance", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invoice_id", BIGID, nullable=True),
        sa.Column("payment_id", BIGID, nullable=True),
        sa.Column("matched_by", sa.String(length=100), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_receipts_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["invoice_payments.id"],
            name=op.f("fk_invoice_receipts_payment_id_invoice_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_receipts")),
        sa.UniqueConstraint("uid", name=op.f("uq_invoice_receipts_uid")),
    )
    op.create_index("ix_invoice_receipts_status", "invoice_receipts", ["status", "id"], unique=False)
    op.create_table(
        "invoice_payouts",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("number", sa.String(length=35), nullable=False),
        sa.Column("biller_id", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payout_date", sa.Date(), nullable=False),
        sa.Column("amount", BIGID, nullable=False),
        sa.Column("payee", JSON, nullable=False),
        sa.Column("entry_id", BIGID, nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.id"], name=op.f("fk_invoice_payouts_biller_id_billers")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.id"], name=op.f("fk_invoice_payouts_entry_id_journal_entries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_payouts")),
        sa.UniqueConstraint("number", name=op.f("uq_invoice_payouts_number")),
        sa.UniqueConstraint(
            "biller_id",
            "currency",
            "payout_date",
            name=op.f("uq_invoice_payouts_biller_id_currency_payout_date"),
        ),
    )


def downgrade() -> None:
    op.drop_table("invoice_payouts")
    op.drop_index("ix_invoice_receipts_status", table_name="invoice_receipts")
    op.drop_table("invoice_receipts")
