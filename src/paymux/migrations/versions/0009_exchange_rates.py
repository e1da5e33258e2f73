"""exchange rates

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> paymux.db.base.UTCDateTime:
    return paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "exchange_rates",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("effective_from", _utc(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("base", "quote", "effective_from"),
    )


def downgrade() -> None:
    op.drop_table("exchange_rates")
