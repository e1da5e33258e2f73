"""account-check transaction ids: blocks taken by processes

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "check_id_blocks",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("taken_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_id_blocks")),
    )


def downgrade() -> None:
    op.drop_table("check_id_blocks")
