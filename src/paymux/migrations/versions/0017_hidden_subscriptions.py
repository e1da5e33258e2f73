"""hidden subscriptions: services.periodic_days, payments.customer, reminders and the sweep's cursor

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = paymux.db.base.UTCDateTime(timezone=True)
CUSTOMER_FINAL = "customer IS NOT NULL AND final_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("periodic_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer", sa.String(length=64), nullable=True))
        batch_op.create_index(
            "ix_payments_customer_final",
            ["final_at", "id"],
            unique=False,
            postgresql_where=sa.text(CUSTOMER_FINAL),
            sqlite_where=sa.text(CUSTOMER_FINAL),
        )
    op.create_table(
        "recurring_reminder_sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("final_at", WHEN, nullable=True),
        sa.Column("payment_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recurring_reminder_sweeps")),
    )
    op.create_table(
        "recurring_reminders",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("agent_id", BIGID, nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("customer_id", BIGID, nullable=True),
        sa.Column("service_id", BIGID, nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_id", BIGID, nullable=False),
        sa.Column("paid_at", WHEN, nullable=False),
        sa.Column("due_at", WHEN, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=200), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("repeated_at", WHEN, nullable=True),
        sa.Column("repeat_payment_id", BIGID, nullable=True),
        sa.Column("subscribed_at", WHEN, nullable=True),
        sa.Column("subscription_id", BIGID, nullable=True),
        sa.Column("opted_out_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_recurring_reminders_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["recurring_customers.id"],
            name=op.f("fk_recurring_reminders_customer_id_recurring_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_recurring_reminders_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["repeat_payment_id"],
            ["payments.id"],
            name=op.f("fk_recurring_reminders_repeat_payment_id_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["services.id"], name=op.f("fk_recurring_reminders_service_id_services")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["recurring_subscriptions.id"],
            name=op.f("fk_recurring_reminders_subscription_id_recurring_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recurring_reminders")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_recurring_reminders_payment_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_recurring_reminders_token_hash")),
    )
    with op.batch_alter_table("recurring_reminders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recurring_reminders_customer",
            ["agent_id", "reference", "service_id", "account"],
            unique=False,
        )
        batch_op.create_index(
            "ix_recurring_reminders_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index("ix_recurring_reminders_sent", ["sent_at"], unique=False)
        batch_op.create_index(
            "ix_recurring_reminders_expiring",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'sent'"),
            sqlite_where=sa.text("status = 'sent'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("recurring_reminders", schema=None) as batch_op:
        batch_op.drop_index("ix_recurring_reminders_expiring", sqlite_where=sa.text("status = 'sent'"))
        batch_op.drop_index("ix_recurring_reminders_sent")
        batch_op.drop_index("ix_recurring_reminders_due", sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index("ix_recurring_reminders_customer")
    op.drop_table("recurring_reminders")
    op.drop_table("recurring_reminder_sweeps")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_customer_final", sqlite_where=sa.text(CUSTOMER_FINAL))
        batch_op.drop_column("customer")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("periodic_days")
