"""Kept consent history names its erased subject in a column of its own, not as a subject id.

Erasure wrote the keyed hash into `subject_id`, where a hash is a well-formed subject id: every
subject route served the kept history under it, and a write under it collided with it. Records
that erasure kept (`retained_until` is set only by erasure) move their hash to `subject_hash`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A record names its subject; once erased, only the subject's keyed hash, until a date. An
# older release's erasure during a rolling upgrade fails here and is retried until a worker
# of this one takes it, rather than leaving a hash where a subject id goes.
CHECK = "kept_or_named"
KEPT_OR_NAMED = (
    "(subject_id IS NULL) <> (subject_hash IS NULL)"
    " AND (subject_hash IS NULL) = (retained_until IS NULL)"
)

records = sa.table(
    "consent_records",
    sa.column("subject_id", sa.String),
    sa.column("subject_hash", sa.String),
    sa.column("retained_until", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(sa.Column("subject_hash", sa.String(length=64), nullable=True))
        batch.alter_column("subject_id", existing_type=sa.String(length=256), nullable=True)
    op.execute(
        sa.update(records)
        .where(records.c.retained_until.is_not(None))
        .values(subject_hash=records.c.subject_id, subject_id=None)
    )
    with op.batch_alter_table("consent_records") as batch:
        batch.create_check_constraint(op.f(f"ck_consent_records_{CHECK}"), KEPT_OR_NAMED)


def downgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_constraint(op.f(f"ck_consent_records_{CHECK}"), type_="check")
    op.execute(
        sa.update(records)
        .where(records.c.subject_hash.is_not(None))
        .values(subject_id=records.c.subject_hash)
    )
    with op.batch_alter_table("consent_records") as batch:
        batch.alter_column("subject_id", existing_type=sa.String(length=256), nullable=False)
        batch.drop_column("subject_hash")
