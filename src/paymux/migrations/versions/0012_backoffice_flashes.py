"""back office: messages shown once on the next page (kept on the server, not in the address)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import paymux.db.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "backoffice_flashes",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backoffice_flashes")),
        sa.UniqueConstraint("id_hash", name=op.f("uq_backoffice_flashes_id_hash")),
    )
    op.create_index(
        op.f("ix_backoffice_flashes_created_at"), "backoffice_flashes", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_backoffice_flashes_created_at"), table_name="backoffice_flashes")
    op.drop_table("backoffice_flashes")
