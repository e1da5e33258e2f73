"""reconciliation: provider registers, lines, resolutions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> paymux.db.base.UTCDateTime:
    return paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reconciliation_mappings",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_reconciliation_mappings_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_mappings")),
        sa.UniqueConstraint("provider_id", name=op.f("uq_reconciliation_mappings_provider_id")),
    )
    op.create_table(
        "reconciliations",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("period_start", _utc(), nullable=False),
        sa.Column("period_end", _utc(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_format", sa.String(length=8), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("id_kind", sa.String(length=16), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_reconciliations_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliations")),
    )
    with op.batch_alter_table("reconciliations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliations_provider_created", ["provider_id", "created_at"], unique=False
        )

    op.create_table(
        "reconciliation_lines",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("reconciliation_id", BIGID, nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("txn_ref", sa.String(length=100), nullable=True),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("provider_amount", sa.BigInteger(), nullable=True),
        sa.Column("our_amount", sa.BigInteger(), nullable=True),
        sa.Column("provider_status", sa.String(length=16), nullable=True),
        sa.Column("our_status", sa.String(length=16), nullable=True),
        sa.Column("provider_at", _utc(), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", _utc(), nullable=True),
        sa.Column("resolved_payment_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reconciliation_id"],
            ["reconciliations.id"],
            name=op.f("fk_reconciliation_lines_reconciliation_id_reconciliations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_lines")),
    )
    with op.batch_alter_table("reconciliation_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliation_lines_kind", ["reconciliation_id", "kind", "id"], unique=False
        )
        batch_op.create_index(
            "ix_reconciliation_lines_payment", ["reconciliation_id", "payment_id"], unique=False
        )
        batch_op.create_index("ix_reconciliation_lines_ref", ["reconciliation_id", "txn_ref"], unique=False)

    op.create_table(
        "reconciliation_fetches",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("reconciliation_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_reconciliation_fetches_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_fetches")),
        sa.UniqueConstraint(
            "provider_id", "period_key", name=op.f("uq_reconciliation_fetches_provider_id_period_key")
        ),
    )
    with op.batch_alter_table("reconciliation_fetches", schema=None) as batch_op:
        batch_op.create_index("ix_reconciliation_fetches_due", ["status", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reconciliation_fetches", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_fetches_due")
    op.drop_table("reconciliation_fetches")
    with op.batch_alter_table("reconciliation_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_lines_ref")
        batch_op.drop_index("ix_reconciliation_lines_payment")
        batch_op.drop_index("ix_reconciliation_lines_kind")
    op.drop_table("reconciliation_lines")
    with op.batch_alter_table("reconciliations", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliations_provider_created")
    op.drop_table("reconciliations")
    op.drop_table("reconciliation_mappings")
