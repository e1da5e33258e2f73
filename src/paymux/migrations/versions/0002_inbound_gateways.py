"""inbound gateways (OSMP as a provider for payment systems)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "inbound_gateways",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", _JSON, nullable=False),
        sa.Column("login", sa.String(length=100), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_inbound_gateways_channel_id_channels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_gateways")),
        sa.UniqueConstraint("code", name=op.f("uq_inbound_gateways_code")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_inbound_gateways_channel_id")),
    )
    op.create_table(
        "inbound_exchanges",
        sa.Column("id", _ID, nullable=False),
        sa.Column("gateway_id", _ID, nullable=False),
        sa.Column("payment_id", _ID, nullable=True),
        sa.Column("command", sa.String(length=16), nullable=False),
        sa.Column("txn_id", sa.String(length=64), nullable=True),
        sa.Column("result", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("request", _JSON, nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("elapsed_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["inbound_gateways.id"],
            name=op.f("fk_inbound_exchanges_gateway_id_inbound_gateways"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_inbound_exchanges_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_exchanges")),
    )
    with op.batch_alter_table("inbound_exchanges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbound_exchanges_payment_id"), ["payment_id"], unique=False)
        batch_op.create_index("ix_inbound_exchanges_gateway_txn", ["gateway_id", "txn_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbound_exchanges", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_exchanges_gateway_txn")
        batch_op.drop_index(batch_op.f("ix_inbound_exchanges_payment_id"))
    op.drop_table("inbound_exchanges")
    op.drop_table("inbound_gateways")
