"""invoice reminders (policy days, requested, sent now) and the billers' time zone

Revision ID: 0021
Revises: 0022
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0021"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("billers") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC"))
    op.create_table(
        "invoice_reminders",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("invoice_id", BIGID, nullable=False),
        sa.Column("biller_id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("notifications", JSON, nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_reminders_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.id"], name=op.f("fk_invoice_reminders_biller_id_billers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_reminders")),
        sa.UniqueConstraint("invoice_id", "key", name=op.f("uq_invoice_reminders_invoice_id_key")),
    )
    op.create_index("ix_invoice_reminders_due", "invoice_reminders", ["status", "day"], unique=False)
    op.create_index(op.f("ix_invoice_reminders_biller_id"), "invoice_reminders", ["biller_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_invoice_reminders_biller_id"), table_name="invoice_reminders")
    op.drop_index("ix_invoice_reminders_due", table_name="invoice_reminders")
    op.drop_table("invoice_reminders")
    with op.batch_alter_table("billers") as batch:
        batch.drop_column("timezone")
