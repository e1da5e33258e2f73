"""invoice_upload_mappings: billers' named ways of reading their invoice files

Revision ID: 0027
Revises: 0025
Create Date: 2026-12-07 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0027"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoice_upload_mappings",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("biller_id", BIGID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["biller_id"], ["billers.id"], name=op.f("fk_invoice_upload_mappings_biller_id_billers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_upload_mappings")),
        sa.UniqueConstraint("biller_id", "name", name=op.f("uq_invoice_upload_mappings_biller_id_name")),
    )


def downgrade() -> None:
    op.drop_table("invoice_upload_mappings")
