"""Erasure requests: durable rows a worker claims, retries and completes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime

# Every request but a cancelled one stands: a new request for its subject gets it back, and
# the unique index below holds at most one per subject.
CANCELLED = "cancelled"
STANDING = f"status <> '{CANCELLED}'"
# A request the worker still runs, as SQL: its claim filters by this very text, so that the
# planner can match it to the partial index below (a bound parameter cannot).
OPEN = ("pending", "running", "failed")
OPEN_SQL = "status IN ('pending', 'running', 'failed')"


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
        # Requests by status: the metrics count the unfinished ones per status.
        Index("ix_erasure_requests_status_run_after", "status", "run_after"),
        # The worker's claim: the open requests due longest, in order. With only the index
        # above, three statuses gave no one order, and each claim sorted every open request.
        Index(
            "ix_erasure_requests_due",
            "run_after",
            postgresql_where=text(OPEN_SQL),
            sqlite_where=text(OPEN_SQL),
        ),
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
    # When Consentry's own part was done (the systems may still be erasing): the 90 days of
    # `retained_until` and of the request's end run from here.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the request was first seen past `due_by` unfinished (and audited so, once).
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ErasureSystem(Base):
    """Where one registered system stands in an erasure: told, confirmed, or failed."""

    __tablename__ = "erasure_systems"

    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("erasure_requests.id", ondelete="CASCADE"), primary_key=True
    )
    system_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # `confirm` or `notify`, as the system's `erasure` was when the request ran.
    mode: Mapped[str] = mapped_column(String(8))
    # `pending`, `confirmed`, `notified`, or `failed` for good (the request ended without it).
    # While pending it reads `failed` when its message is exhausted or the system is disabled,
    # deleted or no longer told of erasures.
    status: Mapped[str] = mapped_column(String(16))
    # The `erasure.requested` message sent to it (its webhook-id).
    message_id: Mapped[str] = mapped_column(String(40))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # `system:<id>` when the system confirmed, else the privacy team's key name.
    confirmed_by: Mapped[str | None] = mapped_column(String(80))
    deleted: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    note: Mapped[str | None] = mapped_column(String(1000))


class ErasureConfirmToken(Base):
    """A confirm token sent with one attempt of `erasure.requested`: only its hash is kept."""

    __tablename__ = "erasure_confirm_tokens"
    __table_args__ = (Index("ix_erasure_confirm_tokens_request_id", "request_id"),)

    # SHA-256 of the token: the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("erasure_requests.id", ondelete="CASCADE")
    )
    system_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
