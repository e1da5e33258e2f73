"""registers: templates, sending tasks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> paymux.db.base.UTCDateTime:
    return paymux.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "register_templates",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_register_templates_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_templates")),
        sa.UniqueConstraint("provider_id", "code", name=op.f("uq_register_templates_provider_id_code")),
    )
    with op.batch_alter_table("register_templates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_register_templates_provider_id"), ["provider_id"], unique=False)

    op.create_table(
        "register_tasks",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("template_id", BIGID, nullable=False),
        sa.Column("provider_id", BIGID, nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("period_start", _utc(), nullable=False),
        sa.Column("period_end", _utc(), nullable=False),
        sa.Column("deliver", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("totals", JSON, nullable=False),
        sa.Column("delivered", JSON, nullable=False),
        sa.Column("built_at", _utc(), nullable=True),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_register_tasks_provider_id_providers")
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["register_templates.id"],
            name=op.f("fk_register_tasks_template_id_register_templates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_tasks")),
        sa.UniqueConstraint(
            "template_id", "period_key", "run", name=op.f("uq_register_tasks_template_id_period_key_run")
        ),
    )
    with op.batch_alter_table("register_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_register_tasks_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_register_tasks_template_id"), ["template_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_register_tasks_provider_id"), ["provider_id"], unique=False)

    op.create_table(
        "register_file_chunks",
        sa.Column("task_id", BIGID, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["register_tasks.id"], name=op.f("fk_register_file_chunks_task_id_register_tasks")
        ),
        sa.PrimaryKeyConstraint("task_id", "seq", name=op.f("pk_register_file_chunks")),
    )
    # payments of a provider that became final in a period, read by id (registers)
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_provider_final", ["provider_id", "final_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_provider_final")
    op.drop_table("register_file_chunks")
    with op.batch_alter_table("register_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_register_tasks_provider_id"))
        batch_op.drop_index(batch_op.f("ix_register_tasks_template_id"))
        batch_op.drop_index("ix_register_tasks_due")
    op.drop_table("register_tasks")
    with op.batch_alter_table("register_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_register_templates_provider_id"))
    op.drop_table("register_templates")
