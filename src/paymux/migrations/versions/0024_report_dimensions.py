"""report dimensions of SmartASR: services.project, agents.manager_id, channels.manager_id

Revision ID: 0024
Revises: 0020
Create Date: 2026-12-07 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project", sa.String(length=64), nullable=True))
    for table in ("agents", "channels"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("manager_id", BIGID, nullable=True))
            batch_op.create_foreign_key(f"fk_{table}_manager_id_users", "users", ["manager_id"], ["id"])


def downgrade() -> None:
    for table in ("channels", "agents"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_manager_id_users", type_="foreignkey")
            batch_op.drop_column("manager_id")
    with op.batch_alter_table("services", schema=None) as batch_op:
        batch_op.drop_column("project")
