"""Integration connections: the catalogue, each learner's connections and their history chain.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=1000), nullable=False),
        sa.Column("data_shared", JSON, nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("default", sa.String(length=8), nullable=False),
        sa.Column("translations", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_integrations_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
    )
    op.create_index(op.f("ix_integrations_provider_id"), "integrations", ["provider_id"])
    op.create_table(
        "integration_connections",
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("integration_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_connections_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint(
            "subject_id", "integration_id", name=op.f("pk_integration_connections")
        ),
    )
    op.create_index(
        "ix_integration_connections_integration_id",
        "integration_connections",
        ["integration_id"],
    )
    op.create_table(
        "integration_chains",
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_integration_chains")),
    )
    op.create_table(
        "integration_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("integration_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_records")),
        sa.UniqueConstraint(
            "subject_id", "seq", name=op.f("uq_integration_records_subject_id_seq")
        ),
    )


def downgrade() -> None:
    op.drop_table("integration_records")
    op.drop_table("integration_chains")
    op.drop_index("ix_integration_connections_integration_id", "integration_connections")
    op.drop_table("integration_connections")
    op.drop_index(op.f("ix_integrations_provider_id"), "integrations")
    op.drop_table("integrations")
