"""A visitor's banner choice can follow them into their account: linked records and used-up ids.

`consent_records.linked_from` names, on a learner's record that carried an anonymous visitor's
choice over, the visitor's record it came from (and is hashed with it). `consent_links` holds
every anonymous id used up by linking, with the learner it went into, so that an id links once
and erasing the learner erases the visitor's subject too.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consent_records") as batch:
        batch.add_column(sa.Column("linked_from", sa.String(length=36), nullable=True))
    op.create_table(
        "consent_links",
        sa.Column("subject_id", sa.String(length=256), nullable=False),
        sa.Column("linked_to", sa.String(length=256), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("receipt_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_consent_links")),
    )
    op.create_index("ix_consent_links_linked_to", "consent_links", ["linked_to"])


def downgrade() -> None:
    op.drop_index("ix_consent_links_linked_to", table_name="consent_links")
    op.drop_table("consent_links")
    with op.batch_alter_table("consent_records") as batch:
        batch.drop_column("linked_from")
