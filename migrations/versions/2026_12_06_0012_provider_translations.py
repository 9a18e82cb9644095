"""Providers carry translations of their name, purpose and shared items; the defaults get German.

The German texts are given only to default providers the privacy team has not changed since
they were loaded (their `updated_at` is still the load time of revision 0004): a provider
renamed to a real vendor must not show the translation of a placeholder.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# When revision 0004 loaded the default providers.
LOADED_AT = datetime(2026, 11, 29, tzinfo=UTC)

providers = sa.table(
    "providers",
    sa.column("id", sa.String),
    sa.column("translations", JSON),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)

GERMAN = {
    "cloud-hosting": {
        "name": "Cloud-Hosting",
        "purpose": (
            "Betreibt die Server, Datenbanken und Sicherungskopien, auf denen die Plattform "
            "läuft, damit Lernende sich anmelden, ihre Kurse öffnen und Arbeiten abgeben können. "
            "Der Anbieter verwahrt diese Daten im Auftrag der Plattform und darf sie für nichts "
            "anderes verwenden."
        ),
        "data_shared": {
            "account_details": "Kontodaten",
            "ip_address": "IP-Adresse",
            "course_progress": "Kursfortschritt",
            "submitted_work": "eingereichte Arbeiten",
        },
    },
    "video-cdn": {
        "name": "Video-Streaming und Auslieferungsnetz",
        "purpose": (
            "Liefert Lernvideos von Servern in der Nähe der Lernenden aus, damit sie schnell "
            "starten und flüssig laufen. Der Dienst sieht, welches Video angefordert wird, und die "
            "Netzwerkadresse des Geräts, und kann einen ungefähren Standort protokollieren, um die "
            "Last auf seine Server zu verteilen."
        ),
        "data_shared": {
            "ip_address": "IP-Adresse",
            "video_requests": "abgerufene Videos",
            "approximate_location": "ungefährer Standort",
        },
    },
    "usage-analytics": {
        "name": "Nutzungsanalyse",
        "purpose": (
            "Zählt, welche Kurse beliebt sind, wie lange Lernende sich mit Themen beschäftigen und "
            "wo Seiten langsam laden, damit die Plattform weiß, was zu verbessern ist. Der Dienst "
            "berichtet Trends über viele Lernende hinweg und darf keine Profile einzelner Personen "
            "anlegen."
        ),
        "data_shared": {
            "pseudonymous_id": "pseudonyme Kennung",
            "usage_statistics": "Nutzungsstatistiken",
            "device_type": "Gerätetyp",
            "page_load_times": "Ladezeiten von Seiten",
        },
    },
    "payment-processing": {
        "name": "Zahlungsabwicklung",
        "purpose": (
            "Nimmt die Zahlung entgegen, wenn sich Lernende in einen kostenpflichtigen Kurs "
            "einschreiben. Die Transaktionsdaten dienen nur dazu, die Zahlung abzuschließen und "
            "zu verbuchen, niemals der Werbung."
        ),
        "data_shared": {
            "name": "Name",
            "email_address": "E-Mail-Adresse",
            "billing_details": "Rechnungsangaben",
            "transaction_details": "Transaktionsdaten",
        },
    },
    "support-desk": {
        "name": "Support",
        "purpose": (
            "Nimmt die Fragen und Probleme entgegen, die Lernende an den Support schicken, und "
            "verfolgt sie, damit das Team sie beantworten kann. Der Dienst erhält nur die "
            "Kontodaten, die zur Lösung einer Anfrage nötig sind."
        ),
        "data_shared": {
            "name": "Name",
            "email_address": "E-Mail-Adresse",
            "account_details": "Kontodaten",
            "support_messages": "Nachrichten an den Support",
        },
    },
}


def upgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.add_column(
            sa.Column("translations", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
    for provider_id, german in GERMAN.items():
        op.execute(
            providers.update()
            .where(providers.c.id == provider_id, providers.c.updated_at == LOADED_AT)
            .values(translations={"de": german})
        )


def downgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.drop_column("translations")
