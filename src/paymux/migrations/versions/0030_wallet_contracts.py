"""e-money contracts, customer groups, cashback profiles and proposals

Revision ID: 0030
Revises: 0025
Create Date: 2026-12-07 19:13:07.186981
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import paymux.db.base

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallet_contract_proposals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("effective_from", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.String(length=100), nullable=False),
        sa.Column("proposed_by_key", sa.String(length=100), nullable=False),
        sa.Column("proposed_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("result_id", sa.BigInteger(), nullable=True),
        sa.Column("effective_at", paymux.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_contract_proposals")),
    )
    with op.batch_alter_table("wallet_contract_proposals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_contract_proposals_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_wallet_contract_proposals_status"), ["status"], unique=False)

    op.create_table(
        "wallet_cashback_profiles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("percent", sa.String(length=20), nullable=True),
        sa.Column("fixed", sa.BigInteger(), nullable=True),
        sa.Column("per_operation_cap", sa.BigInteger(), nullable=True),
        sa.Column("monthly_cap", sa.BigInteger(), nullable=True),
        sa.Column("funding", sa.String(length=16), nullable=False),
        sa.Column(
            "operation_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("proposal_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issuer_id"],
            ["wallet_issuers.id"],
            name=op.f("fk_wallet_cashback_profiles_issuer_id_wallet_issuers"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["wallet_customers.id"],
            name=op.f("fk_wallet_cashback_profiles_merchant_id_wallet_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_cashback_profiles")),
        sa.UniqueConstraint(
            "merchant_id",
            "effective_from",
            name=op.f("uq_wallet_cashback_profiles_merchant_id_effective_from"),
        ),
        sa.UniqueConstraint(
            "merchant_id", "version", name=op.f("uq_wallet_cashback_profiles_merchant_id_version")
        ),
    )
    with op.batch_alter_table("wallet_cashback_profiles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wallet_cashback_profiles_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "wallet_contracts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("group_code", sa.String(length=32), nullable=True),
        sa.Column("scope_key", sa.String(length=80), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "terms",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("proposal_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_wallet_contracts_customer_id_wallet_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["wallet_issuers.id"], name=op.f("fk_wallet_contracts_issuer_id_wallet_issuers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_contracts")),
        sa.UniqueConstraint(
            "scope_key", "effective_from", name=op.f("uq_wallet_contracts_scope_key_effective_from")
        ),
        sa.UniqueConstraint("scope_key", "version", name=op.f("uq_wallet_contracts_scope_key_version")),
    )
    with op.batch_alter_table("wallet_contracts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_contracts_scope_key"), ["scope_key"], unique=False)

    op.create_table(
        "wallet_customer_groups",
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("group_code", sa.String(length=32), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["wallet_customers.id"],
            name=op.f("fk_wallet_customer_groups_customer_id_wallet_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_wallet_customer_groups")),
    )
    with op.batch_alter_table("wallet_customer_groups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wallet_customer_groups_group_code"), ["group_code"], unique=False
        )

    op.create_table(
        "wallet_cashbacks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "cashback_operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", paymux.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cashback_operation_id"],
            ["wallet_operations.id"],
            name=op.f("fk_wallet_cashbacks_cashback_operation_id_wallet_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["wallet_issuers.id"], name=op.f("fk_wallet_cashbacks_issuer_id_wallet_issuers")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["wallet_customers.id"],
            name=op.f("fk_wallet_cashbacks_merchant_id_wallet_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["wallet_operations.id"],
            name=op.f("fk_wallet_cashbacks_operation_id_wallet_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["payer_id"], ["wallet_customers.id"], name=op.f("fk_wallet_cashbacks_payer_id_wallet_customers")
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["wallet_cashback_profiles.id"],
            name=op.f("fk_wallet_cashbacks_profile_id_wallet_cashback_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_cashbacks")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_wallet_cashbacks_operation_id")),
    )
    with op.batch_alter_table("wallet_cashbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallet_cashbacks_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wallet_cashbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_cashbacks_created_at"))

    op.drop_table("wallet_cashbacks")
    with op.batch_alter_table("wallet_customer_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_customer_groups_group_code"))

    op.drop_table("wallet_customer_groups")
    with op.batch_alter_table("wallet_contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_contracts_scope_key"))

    op.drop_table("wallet_contracts")
    with op.batch_alter_table("wallet_cashback_profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_cashback_profiles_merchant_id"))

    op.drop_table("wallet_cashback_profiles")
    with op.batch_alter_table("wallet_contract_proposals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallet_contract_proposals_status"))
        batch_op.drop_index(batch_op.f("ix_wallet_contract_proposals_kind"))

    op.drop_table("wallet_contract_proposals")
