"""an index of final payments by final_at (registers, debts, statements, reports)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_payments_final",
        "payments",
        ["final_at"],
        unique=False,
        postgresql_where=sa.text("final_at IS NOT NULL"),
        sqlite_where=sa.text("final_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_final", table_name="payments")
