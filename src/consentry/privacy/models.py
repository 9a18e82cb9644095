"""Erasure requests: durable rows a worker claims, retries and completes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime

# Every request but a cancelled one stands: a new request for its subject gets it back, and
# the unique index below holds at most one per subject.
CANCELLED = "cancelled"
STANDING = f"status <> '{CANCELLED}'"


class ErasureRequest(Base):
    """A request to erase a subject; once completed it holds only the subject's keyed hash."""

    __tablename__ = "erasure_requests"
    __table_args__ = (
        Index("ix_erasure_requests_subject_hash", "subject_hash"),
        # One open or completed request per subject, however many arrive at once: a second
        # insert conflicts here (repository.add_unless_standing). Cancelled ones never count.
        Index(
            "uq_erasure_requests_standing_subject_hash",
            "subject_hash",
            unique=True,
            postgresql_where=text(STANDING),
            sqlite_where=text(STANDING),
        ),
        # The worker's query: open requests whose time has come.
        Index("ix_erasure_requests_status_run_after", "status", "run_after"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Cleared when the erasure completes: from then on only the hash names the subject.
    subject_id: Mapped[str | None] = mapped_column(String(256))
    subject_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_by: Mapped[datetime] = mapped_column(UTCDateTime)
    # Not before the grace period ends; after a failure, not before the next retry.
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(256))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    retained_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
