"""tariff proposals (maker-checker)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> paymux.db.base.UTCDateTime:
    return paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tariff_proposals",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("effective_from", _utc(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.String(length=100), nullable=False),
        sa.Column("proposed_by_key", sa.String(length=100), nullable=False),
        sa.Column("proposed_at", _utc(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("version_id", BIGID, nullable=True),
        sa.Column("effective_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["tariff_versions.id"],
            name=op.f("fk_tariff_proposals_version_id_tariff_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tariff_proposals")),
    )
    with op.batch_alter_table("tariff_proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tariff_proposals_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tariff_proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tariff_proposals_status"))
    op.drop_table("tariff_proposals")
