"""invoice collection: billers, their API keys, invoices, their changes and payments; notifications
may be a biller's

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "billers",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("brand", JSON, nullable=False),
        sa.Column("legal", JSON, nullable=False),
        sa.Column("support", JSON, nullable=False),
        sa.Column("methods", JSON, nullable=False),
        sa.Column("account", JSON, nullable=False),
        sa.Column("reminder_days", JSON, nullable=False),
        sa.Column("fee_amount", BIGID, nullable=False),
        sa.Column("fee_currency", sa.String(length=3), nullable=False),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("webhook_secret", sa.String(length=500), nullable=True),
        sa.Column("webhook_enabled", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billers")),
        sa.UniqueConstraint("code", name=op.f("uq_billers_code")),
    )
    op.create_table(
        "biller_keys",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("biller_id", BIGID, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["biller_id"], ["billers.id"], name=op.f("fk_biller_keys_biller_id_billers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_biller_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_biller_keys_key_hash")),
    )
    op.create_index(op.f("ix_biller_keys_biller_id"), "biller_keys", ["biller_id"], unique=False)
    op.create_table(
        "invoices",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("biller_id", BIGID, nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("payer_name", sa.String(length=200), nullable=True),
        sa.Column("payer_email", sa.String(length=320), nullable=True),
        sa.Column("payer_phone", sa.String(length=16), nullable=True),
        sa.Column("payer_language", sa.String(length=8), nullable=False),
        sa.Column("amount", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_amount", BIGID, nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("lines", JSON, nullable=True),
        sa.Column("reference", sa.String(length=25), nullable=False),
        sa.Column("partial_allowed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("link_token", sa.String(length=64), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("refund_review", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["biller_id"], ["billers.id"], name=op.f("fk_invoices_biller_id_billers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("biller_id", "number", name=op.f("uq_invoices_biller_id_number")),
        sa.UniqueConstraint("link_token", name=op.f("uq_invoices_link_token")),
    )
    op.create_index("ix_invoices_due", "invoices", ["status", "due_date"], unique=False)
    op.create_table(
        "invoice_changes",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("biller_id", BIGID, nullable=False),
        sa.Column("invoice_id", BIGID, nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("paid_amount", BIGID, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.id"], name=op.f("fk_invoice_changes_biller_id_billers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_changes_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_changes")),
    )
    op.create_index("ix_invoice_changes_feed", "invoice_changes", ["biller_id", "id"], unique=False)
    op.create_index("ix_invoice_changes_invoice", "invoice_changes", ["invoice_id", "id"], unique=False)
    op.create_table(
        "invoice_payments",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("invoice_id", BIGID, nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("method_reference", sa.String(length=200), nullable=False),
        sa.Column("amount", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("applied", BIGID, nullable=False),
        sa.Column("excess", BIGID, nullable=False),
        sa.Column("refund_review", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_payments_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_payments")),
        sa.UniqueConstraint(
            "method", "method_reference", name=op.f("uq_invoice_payments_method_method_reference")
        ),
    )
    op.create_index(op.f("ix_invoice_payments_invoice_id"), "invoice_payments", ["invoice_id"], unique=False)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("agent_id", existing_type=BIGID, nullable=True)
        batch_op.add_column(sa.Column("biller_id", BIGID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_biller_id_billers"), "billers", ["biller_id"], ["id"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_notifications_biller_id_key_channel"), ["biller_id", "key", "channel"]
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM notification_attempts WHERE notification_id IN "
        "(SELECT id FROM notifications WHERE biller_id IS NOT NULL)"
    )
    op.execute("DELETE FROM notifications WHERE biller_id IS NOT NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_notifications_biller_id_key_channel"), type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_notifications_biller_id_billers"), type_="foreignkey")
        batch_op.drop_column("biller_id")
        batch_op.alter_column("agent_id", existing_type=BIGID, nullable=False)
    op.drop_index(op.f("ix_invoice_payments_invoice_id"), table_name="invoice_payments")
    op.drop_table("invoice_payments")
    op.drop_index("ix_invoice_changes_invoice", table_name="invoice_changes")
    op.drop_index("ix_invoice_changes_feed", table_name="invoice_changes")
    op.drop_table("invoice_changes")
    op.drop_index("ix_invoices_due", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index(op.f("ix_biller_keys_biller_id"), table_name="biller_keys")
    op.drop_table("biller_keys")
    op.drop_table("billers")
