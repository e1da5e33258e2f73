"""invoice attempts: the payer's tries by a method of the hosted payment page

Revision ID: 0019
Revises: 0024
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0019"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoice_attempts",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("invoice_id", BIGID, nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("processor_ref", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_attempts_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_attempts")),
        sa.UniqueConstraint("reference", name=op.f("uq_invoice_attempts_reference")),
    )
    op.create_index(op.f("ix_invoice_attempts_invoice_id"), "invoice_attempts", ["invoice_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_invoice_attempts_invoice_id"), table_name="invoice_attempts")
    op.drop_table("invoice_attempts")
