"""The audit log table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime


class AuditEntry(Base):
    """One recorded action; a subject appears only as its keyed hash, so erasure never edits it."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_subject_hash", "subject_hash"),
        Index("ix_audit_log_at", "at"),
    )

    # Ascending in the order rows were written: the list's order and its cursor.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(48))
    actor: Mapped[str] = mapped_column(String(64))
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    # What the action was about besides a subject: a provider id, a request id, a key name.
    target: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
