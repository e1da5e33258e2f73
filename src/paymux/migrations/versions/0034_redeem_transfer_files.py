"""redeem requests: the bank transfer file (sent state, batch, time and sender)

Revision ID: 0034
Revises: 0032
Create Date: 2026-12-07 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0034"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("redeem_requests") as b:
        b.add_column(sa.Column("transfer_batch", sa.String(length=35), nullable=True))
        b.add_column(sa.Column("sent_by", sa.String(length=100), nullable=True))
        b.add_column(sa.Column("sent_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True))
        b.create_index(b.f("ix_redeem_requests_transfer_batch"), ["transfer_batch"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("redeem_requests") as b:
        b.drop_index(b.f("ix_redeem_requests_transfer_batch"))
        b.drop_column("sent_at")
        b.drop_column("sent_by")
        b.drop_column("transfer_batch")
