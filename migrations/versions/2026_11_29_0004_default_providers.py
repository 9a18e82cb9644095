"""Default providers: the kinds of third party the platform's policy says receive data.

Each row names a kind of service rather than a vendor; the privacy team renames it (PUT) to the
vendor actually under contract and corrects its countries and safeguards.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# The rows are data of this release, not of the moment a database happens to be migrated.
LOADED_AT = datetime(2026, 11, 29, tzinfo=UTC)

# A snapshot of the table as this revision knows it, so later model changes cannot alter it.
providers = sa.table(
    "providers",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("purpose", sa.String),
    sa.column("data_shared", JSON),
    sa.column("category", sa.String),
    sa.column("countries", JSON),
    sa.column("transfer_mechanism", sa.String),
    sa.column("opt_out_url", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)

DEFAULT_PROVIDERS = [
    {
        "id": "cloud-hosting",
        "name": "Cloud hosting",
        "kind": "technology",
        "purpose": (
            "Runs the servers, databases and backups the platform is built on, so that learners "
            "can sign in, open their courses and hand in work. It keeps this data on the "
            "platform's behalf and may not use it for anything else."
        ),
        "data_shared": ["account_details", "ip_address", "course_progress", "submitted_work"],
        "category": "necessary",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
    },
    {
        "id": "video-cdn",
        "name": "Video streaming and delivery network",
        "kind": "technology",
        "purpose": (
            "Delivers lesson videos from servers close to the learner so they start quickly and "
            "play smoothly. It sees which video is requested and the device's network address, "
            "and may log an approximate location to spread the load across its servers."
        ),
        "data_shared": ["ip_address", "video_requests", "approximate_location"],
        "category": "necessary",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
    },
    {
        "id": "usage-analytics",
        "name": "Usage analytics",
        "kind": "analytics",
        "purpose": (
            "Counts which courses are popular, how long learners spend on topics and where pages "
            "load slowly, so the platform knows what to improve. It reports trends across many "
            "learners and may not build profiles of individual people."
        ),
        "data_shared": ["pseudonymous_id", "usage_statistics", "device_type", "page_load_times"],
        "category": "performance",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
    },
    {
        "id": "payment-processing",
        "name": "Payment processing",
        "kind": "payment",
        "purpose": (
            "Takes payment when a learner enrols in a paid course. It uses the transaction "
            "details only to complete and record the payment, never for advertising."
        ),
        "data_shared": ["name", "email_address", "billing_details", "transaction_details"],
        "category": "necessary",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
    },
    {
        "id": "support-desk",
        "name": "Support desk",
        "kind": "support",
        "purpose": (
            "Receives and tracks the questions and problems learners send to support, so staff "
            "can answer them. It gets only the account details a request needs to be resolved."
        ),
        "data_shared": ["name", "email_address", "account_details", "support_messages"],
        "category": "necessary",
        "countries": ["US"],
        "transfer_mechanism": "SCC",
        "opt_out_url": None,
    },
]
DEFAULT_IDS = [provider["id"] for provider in DEFAULT_PROVIDERS]


def upgrade() -> None:
    op.bulk_insert(
        providers,
        [{**row, "created_at": LOADED_AT, "updated_at": LOADED_AT} for row in DEFAULT_PROVIDERS],
    )


def downgrade() -> None:
    op.execute(providers.delete().where(providers.c.id.in_(DEFAULT_IDS)))
