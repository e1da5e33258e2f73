"""settlement: provider alerts, payment orders, reconciliation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> paymux.db.base.UTCDateTime:
    return paymux.db.base.UTCDateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "settlement_details",
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("beneficiary", sa.String(length=200), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=True),
        sa.Column("bic", sa.String(length=11), nullable=True),
        sa.Column("bank_name", sa.String(length=200), nullable=True),
        sa.Column("account", sa.String(length=34), nullable=True),
        sa.Column("bik", sa.String(length=9), nullable=True),
        sa.Column("corr_account", sa.String(length=20), nullable=True),
        sa.Column("inn", sa.String(length=12), nullable=True),
        sa.Column("kpp", sa.String(length=9), nullable=True),
        sa.Column("withhold_remuneration", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.String(length=210), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        _fk("settlement_details", "provider_id", "providers"),
        sa.PrimaryKeyConstraint("provider_id", name=op.f("pk_settlement_details")),
    )
    op.create_table(
        "balance_alert_rules",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("emails", JSON, nullable=False),
        sa.Column("webhook_url", sa.String(length=500), nullable=True),
        sa.Column("webhook_secret", sa.String(length=200), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        _fk("balance_alert_rules", "provider_id", "providers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_alert_rules")),
    )
    op.create_index(
        "uq_balance_alert_rules_provider_currency",
        "balance_alert_rules",
        ["provider_id", "currency"],
        unique=True,
    )
    op.create_table(
        "balance_alerts",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("rule_id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("delivered", JSON, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        _fk("balance_alerts", "rule_id", "balance_alert_rules"),
        _fk("balance_alerts", "provider_id", "providers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_alerts")),
    )
    op.create_index("ix_balance_alerts_due", "balance_alerts", ["status", "due_at"], unique=False)
    op.create_index(op.f("ix_balance_alerts_rule_id"), "balance_alerts", ["rule_id"], unique=False)

    op.create_table(
        "payment_orders",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("number", sa.String(length=35), nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("payments", sa.BigInteger(), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("remuneration", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=210), nullable=False),
        sa.Column("payee", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("approved_by", sa.String(length=100), nullable=True),
        sa.Column("approved_at", _utc(), nullable=True),
        sa.Column("exported_at", _utc(), nullable=True),
        sa.Column("paid_at", _utc(), nullable=True),
        sa.Column("paid_by", sa.String(length=100), nullable=True),
        sa.Column("statement_line_id", sa.BigInteger(), nullable=True),
        sa.Column("entry_id", BIGID, nullable=True),
        sa.Column("cancelled_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        _fk("payment_orders", "provider_id", "providers"),
        _fk("payment_orders", "entry_id", "journal_entries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_payment_orders_number")),
    )
    op.create_index(
        "uq_payment_orders_live_period",
        "payment_orders",
        ["provider_id", "currency", "period_start"],
        unique=True,
        postgresql_where=sa.text("status <> 'cancelled'"),
        sqlite_where=sa.text("status <> 'cancelled'"),
    )
    op.create_index("ix_payment_orders_status", "payment_orders", ["status", "id"], unique=False)

    op.create_table(
        "bank_statements",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=34), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("new_lines", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_statements")),
    )
    op.create_table(
        "statement_lines",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("statement_id", BIGID, nullable=False),
        sa.Column("uid", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=6), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("counterparty", sa.String(length=200), nullable=False),
        sa.Column("counterparty_account", sa.String(length=34), nullable=False),
        sa.Column("counterparty_bank", sa.String(length=11), nullable=False),
        sa.Column("counterparty_inn", sa.String(length=12), nullable=False),
        sa.Column("reference", sa.String(length=140), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("order_id", BIGID, nullable=True),
        sa.Column("provider_id", BIGID, nullable=True),
        sa.Column("entry_id", BIGID, nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        _fk("statement_lines", "statement_id", "bank_statements"),
        _fk("statement_lines", "order_id", "payment_orders"),
        _fk("statement_lines", "provider_id", "providers"),
        _fk("statement_lines", "entry_id", "journal_entries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_lines")),
        sa.UniqueConstraint("uid", name=op.f("uq_statement_lines_uid")),
    )
    op.create_index(
        op.f("ix_statement_lines_statement_id"), "statement_lines", ["statement_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_statement_lines_statement_id"), table_name="statement_lines")
    op.drop_table("statement_lines")
    op.drop_table("bank_statements")
    op.drop_index("ix_payment_orders_status", table_name="payment_orders")
    op.drop_index("uq_payment_orders_live_period", table_name="payment_orders")
    op.drop_table("payment_orders")
    op.drop_index(op.f("ix_balance_alerts_rule_id"), table_name="balance_alerts")
    op.drop_index("ix_balance_alerts_due", table_name="balance_alerts")
    op.drop_table("balance_alerts")
    op.drop_index("uq_balance_alert_rules_provider_currency", table_name="balance_alert_rules")
    op.drop_table("balance_alert_rules")
    op.drop_table("settlement_details")
