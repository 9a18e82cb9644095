"""Privacy operations: audit log, erasure requests, tombstones, aggregates, providers, secrets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_subject_hash", "audit_log", ["subject_hash"], unique=False)
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=256), nullable=True),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("due_by", TIMESTAMP, nullable=False),
        sa.Column("run_after", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=256), nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("deleted", JSON, nullable=True),
        sa.Column("retained_until", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    op.create_index(
        "ix_erasure_requests_status_run_after",
        "erasure_requests",
        ["status", "run_after"],
        unique=False,
    )
    op.create_index(
        "ix_erasure_requests_subject_hash", "erasure_requests", ["subject_hash"], unique=False
    )
    op.create_table(
        "event_aggregates",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "category", "name", name=op.f("pk_event_aggregates")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=1000), nullable=False),
        sa.Column("data_shared", JSON, nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("countries", JSON, nullable=False),
        sa.Column("transfer_mechanism", sa.String(length=64), nullable=True),
        sa.Column("opt_out_url", sa.String(length=512), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
    )
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_secrets")),
    )
    op.create_table(
        "tombstones",
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("subject_hash", name=op.f("pk_tombstones")),
    )
    op.add_column("consent_records", sa.Column("retained_until", TIMESTAMP, nullable=True))


def downgrade() -> None:
    op.drop_column("consent_records", "retained_until")
    op.drop_table("tombstones")
    op.drop_table("service_secrets")
    op.drop_table("providers")
    op.drop_table("event_aggregates")
    op.drop_index("ix_erasure_requests_subject_hash", table_name="erasure_requests")
    op.drop_index("ix_erasure_requests_status_run_after", table_name="erasure_requests")
    op.drop_table("erasure_requests")
    op.drop_index("ix_audit_log_subject_hash", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
