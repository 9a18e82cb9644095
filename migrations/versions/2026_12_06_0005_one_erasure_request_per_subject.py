"""One standing erasure request per subject, held by a unique index on its keyed hash.

Requests that arrived at once could each insert a request. Before the index can exist, each
subject keeps one: its completed request if it has one, else its earliest. The others read
`cancelled`, the one status that neither stands in the way of a request nor is ever worked on:
they cannot read `completed` beside the one that is (the index allows one), and a deleted row
would turn an id a client was given into a 404. Each is audited with the request it duplicated.
The downgrade drops the index and leaves those requests cancelled.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
INDEX = "uq_erasure_requests_standing_subject_hash"
STANDING = "status <> 'cancelled'"

# Snapshots of the tables as this revision knows them.
requests = sa.table(
    "erasure_requests",
    sa.column("id", sa.String),
    sa.column("subject_hash", sa.String),
    sa.column("status", sa.String),
    sa.column("requested_at", TIMESTAMP),
)
audit_log = sa.table(
    "audit_log",
    sa.column("at", TIMESTAMP),
    sa.column("action", sa.String),
    sa.column("actor", sa.String),
    sa.column("subject_hash", sa.String),
    sa.column("target", sa.String),
    sa.column("details", JSON),
)


def _keep_first(row: Any) -> tuple[int, Any, str]:
    """The order in which a subject's standing requests are kept: completed, then earliest."""
    return (0 if row.status == "completed" else 1, row.requested_at, row.id)


def upgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite holds UTC without an offset
    standing = bind.execute(
        sa.select(
            requests.c.id, requests.c.subject_hash, requests.c.status, requests.c.requested_at
        )
        .where(sa.text(STANDING))
        .order_by(requests.c.subject_hash)
    ).all()
    for subject_hash, group in groupby(standing, key=lambda row: row.subject_hash):
        kept, *duplicates = sorted(group, key=_keep_first)
        for duplicate in duplicates:
            bind.execute(
                sa.update(requests).where(requests.c.id == duplicate.id).values(status="cancelled")
            )
            bind.execute(
                sa.insert(audit_log).values(
                    at=now,
                    action="erasure_cancelled",
                    actor="worker",
                    subject_hash=subject_hash,
                    target=duplicate.id,
                    details={"duplicate_of": kept.id, "was": duplicate.status},
                )
            )
    op.create_index(
        INDEX,
        "erasure_requests",
        ["subject_hash"],
        unique=True,
        postgresql_where=sa.text(STANDING),
        sqlite_where=sa.text(STANDING),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="erasure_requests")
