"""route switches: what each changed, for an exact switch back

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "route_switch_changes",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("switch_id", BIGID, nullable=False),
        sa.Column("candidate_id", sa.BigInteger(), nullable=False),
        sa.Column("added", sa.Boolean(), nullable=False),
        sa.Column("was_enabled", sa.Boolean(), nullable=False),
        sa.Column("was_priority", sa.Integer(), nullable=False),
        sa.Column("was_switched_by_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["switch_id"],
            ["route_switches.id"],
            name=op.f("fk_route_switch_changes_switch_id_route_switches"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_switch_changes")),
    )
    op.create_index(
        op.f("ix_route_switch_changes_switch_id"), "route_switch_changes", ["switch_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_route_switch_changes_switch_id"), table_name="route_switch_changes")
    op.drop_table("route_switch_changes")
