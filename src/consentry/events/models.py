"""The events table (every event a subject's consent allowed, stored once) and its aggregates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime


class Event(Base):
    """One stored event; its primary key is what makes a retried event a duplicate."""

    __tablename__ = "events"
    __table_args__ = (
        # A subject's events by time: its event list, export and erasure.
        Index("ix_events_subject_id_occurred_at", "subject_id", "occurred_at"),
        # Retention finds old analytics by time alone.
        Index("ix_events_occurred_at", "occurred_at"),
    )

    subject_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # The canonical lower-case form of the UUID the sender chose.
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    category: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    # Corrected by the sender's clock skew when the batch carried `sent_at`.
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    context: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class EventAggregate(Base):
    """Counts of analytics events past retention, per day, category and name: no subject left."""

    __tablename__ = "event_aggregates"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
