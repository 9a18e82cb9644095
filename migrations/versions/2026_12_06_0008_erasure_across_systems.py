"""Erasure across the platform's systems: each system's entry, and the confirm tokens.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

requests = sa.table(
    "erasure_requests",
    sa.column("status", sa.String),
    sa.column("completed_at", TIMESTAMP),
    sa.column("erased_at", TIMESTAMP),
)


def upgrade() -> None:
    with op.batch_alter_table("erasure_requests") as batch:
        batch.add_column(sa.Column("erased_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("overdue_at", TIMESTAMP, nullable=True))
    # Requests completed before systems existed were done when Consentry's part was.
    op.execute(
        sa.update(requests)
        .where(requests.c.status == "completed")
        .values(erased_at=requests.c.completed_at)
    )
    op.create_table(
        "erasure_systems",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("confirmed_at", TIMESTAMP, nullable=True),
        sa.Column("confirmed_by", sa.String(length=80), nullable=True),
        sa.Column("deleted", JSON, nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["erasure_requests.id"],
            name=op.f("fk_erasure_systems_request_id_erasure_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "system_id", name=op.f("pk_erasure_systems")),
    )
    op.create_table(
        "erasure_confirm_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["erasure_requests.id"],
            name=op.f("fk_erasure_confirm_tokens_request_id_erasure_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_erasure_confirm_tokens")),
    )
    op.create_index(
        "ix_erasure_confirm_tokens_request_id",
        "erasure_confirm_tokens",
        ["request_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_erasure_confirm_tokens_request_id", table_name="erasure_confirm_tokens")
    op.drop_table("erasure_confirm_tokens")
    op.drop_table("erasure_systems")
    # A request still waiting for systems was done as far as this release knows.
    op.execute(
        sa.update(requests)
        .where(requests.c.status == "awaiting_systems")
        .values(status="completed", completed_at=requests.c.erased_at)
    )
    with op.batch_alter_table("erasure_requests") as batch:
        batch.drop_column("overdue_at")
        batch.drop_column("erased_at")
