"""KYC cases and documents, support codewords, tickets, messages and attachments, text overrides

Revision ID: 0033
Revises: 0025
Create Date: 2026-12-07 19:13:03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0033"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "text_overrides",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_text_overrides")),
        sa.UniqueConstraint("language", "key_hash", name=op.f("uq_text_overrides_language_key_hash")),
    )
    op.create_table(
        "kyc_cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["wallet_customers.id"], name=op.f("fk_kyc_cases_customer_id_wallet_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kyc_cases")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_kyc_cases_customer_id")),
    )
    with op.batch_alter_table("kyc_cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_cases_status"), ["status"], unique=False)

    op.create_table(
        "kyc_documents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_kyc_documents_customer_id_wallet_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kyc_documents")),
    )
    with op.batch_alter_table("kyc_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kyc_documents_customer_id"), ["customer_id"], unique=False)

    op.create_table(
        "support_codewords",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_support_codewords_customer_id_wallet_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_codewords")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_support_codewords_customer_id")),
    )
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=10), nullable=False),
        sa.Column("assignee_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("due_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_support_tickets_assignee_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_support_tickets_customer_id_wallet_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_tickets")),
    )
    with op.batch_alter_table("support_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_tickets_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_tickets_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_support_tickets_status"), ["status"], unique=False)

    op.create_table(
        "support_ticket_attachments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["support_tickets.id"],
            name=op.f("fk_support_ticket_attachments_ticket_id_support_tickets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_ticket_attachments")),
    )
    with op.batch_alter_table("support_ticket_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_ticket_attachments_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "support_ticket_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("from_customer", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["support_tickets.id"],
            name=op.f("fk_support_ticket_messages_ticket_id_support_tickets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_ticket_messages")),
    )
    with op.batch_alter_table("support_ticket_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_ticket_messages_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("support_ticket_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_ticket_messages_ticket_id"))

    op.drop_table("support_ticket_messages")
    with op.batch_alter_table("support_ticket_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_ticket_attachments_ticket_id"))

    op.drop_table("support_ticket_attachments")
    with op.batch_alter_table("support_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_tickets_status"))
        batch_op.drop_index(batch_op.f("ix_support_tickets_customer_id"))
        batch_op.drop_index(batch_op.f("ix_support_tickets_assignee_id"))

    op.drop_table("support_tickets")
    op.drop_table("support_codewords")
    with op.batch_alter_table("kyc_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_documents_customer_id"))

    op.drop_table("kyc_documents")
    with op.batch_alter_table("kyc_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kyc_cases_status"))

    op.drop_table("kyc_cases")
    op.drop_table("text_overrides")
