"""Tables of the platform systems: the registry, the outbox's messages and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime


class System(Base):
    """A platform service told about consent changes and erasures, and how to sign for it."""

    __tablename__ = "systems"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    webhook_url: Mapped[str] = mapped_column(String(2048))
    # `confirm`, `notify` or `none`: whether it is told of erasures, and answers.
    erasure: Mapped[str] = mapped_column(String(8))
    # The signing secret itself (`whsec_...`): a webhook is signed with it, so it cannot be a
    # hash. The one before a rotation signs too, until `previous_secret_until`.
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the system answered 410 Gone; its deliveries wait until its next PUT.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SystemEvent(Base):
    """One message type a system subscribed to: the consent write finds its subscribers here."""

    __tablename__ = "system_events"
    __table_args__ = (Index("ix_system_events_type", "type"),)

    system_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("systems.id", ondelete="CASCADE"), primary_key=True
    )
    type: Mapped[str] = mapped_column(String(32), primary_key=True)


class OutboxMessage(Base):
    """A change to announce, stored in the transaction that made it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_subject_hash", "subject_hash"),)

    # The `webhook-id`: the same on every attempt, the receiver's idempotency key.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    # The keyed hash of the subject the body names, so an erasure can find and clear it.
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    # Null once cleared: a message whose subject was erased can no longer be sent.
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# A delivery still to be sent (or to be tried again), as SQL: the claim's filter is this very
# text, so that the planner can match it to the partial index below (a bound parameter cannot).
UNDELIVERED = ("pending", "failed")
UNDELIVERED_SQL = "status IN ('pending', 'failed')"


class WebhookDelivery(Base):
    """One message on its way to one system: its attempts and where it stands."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The worker's claim: the deliveries still to be sent, oldest first. Partial, so that a
        # claim reads its batch off the index and stops, however long the backlog; with both
        # statuses in one ordered index it had to sort every due delivery for each claim.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text(UNDELIVERED_SQL),
            sqlite_where=text(UNDELIVERED_SQL),
        ),
        # The metrics group by system.
        Index("ix_webhook_deliveries_system_id_status", "system_id", "status"),
    )

    message_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("outbox_messages.id", ondelete="CASCADE"), primary_key=True
    )
    # No foreign key: a system deleted while a consent write announces to it must not fail the
    # write; its deliveries are removed with it, and any that slipped in are never claimed.
    system_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # `pending`, `delivered`, `failed` (retried later) or `exhausted`.
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    # Failed attempts since the schedule last began (a retry by hand begins it again).
    streak: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The HTTP status of the last attempt, or `timeout` / `refused`.
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(64))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
