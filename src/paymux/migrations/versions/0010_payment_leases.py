"""leases per claim: a payment pinned to the provider a late request may reach; attempts name their lease

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch:
        batch.add_column(
            sa.Column("provider_pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("payment_attempts") as batch:
        batch.add_column(sa.Column("lease", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_attempts") as batch:
        batch.drop_column("lease")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("provider_pinned")
