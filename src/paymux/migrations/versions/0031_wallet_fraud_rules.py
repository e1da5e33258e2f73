"""wallet anti-fraud: rules (velocity, amount, new payee) and, on operations, the rule that held one,
why it waits and a block on the single operation

Revision ID: 0031
Revises: 0025
Create Date: 2026-12-07 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wallet_fraud_rules",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("issuer_id", ID, nullable=True),
        sa.Column("max_count", sa.Integer(), nullable=True),
        sa.Column("max_amount", sa.BigInteger(), nullable=True),
        sa.Column("window_minutes", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["wallet_issuers.id"], name=op.f("fk_wallet_fraud_rules_issuer_id_wallet_issuers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_fraud_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_wallet_fraud_rules_name")),
    )
    with op.batch_alter_table("wallet_operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fraud_rule_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("hold_reason", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("blocked", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("wallet_operations", schema=None) as batch_op:
        batch_op.drop_column("blocked")
        batch_op.drop_column("hold_reason")
        batch_op.drop_column("fraud_rule_id")
    op.drop_table("wallet_fraud_rules")
