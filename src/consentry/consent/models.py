"""Tables of consent: the current state per subject and the history of every change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime

KEPT_OR_NAMED = (
    "(subject_id IS NULL) <> (subject_hash IS NULL)"
    " AND (subject_hash IS NULL) = (retained_until IS NULL)"
)


class ConsentState(Base):
    """One row per subject with a recorded choice: what holds now, and where its chain ends."""

    __tablename__ = "consent_states"

    subject_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # 0 only inside the transaction that records a subject's first choice (a lock placeholder).
    revision: Mapped[int] = mapped_column(Integer)
    # {category: {"granted": bool, "source": str, "updated_at": RFC 3339}}; `updated_at` is when
    # the value last changed, so for a granted category it is when the unbroken grant began.
    categories: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    policy_version: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(35))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    receipt_id: Mapped[str | None] = mapped_column(String(36))
    last_hash: Mapped[str | None] = mapped_column(String(64))


class ConsentRecord(Base):
    """One recorded change, chained to the previous one by `prev_hash`."""

    __tablename__ = "consent_records"
    __table_args__ = (
        # One record per position in a subject's chain: two writers can never fork it.
        UniqueConstraint("subject_id", "seq"),
        # A record names its subject; once erased, only the subject's keyed hash, until a date.
        CheckConstraint(KEPT_OR_NAMED, name="kept_or_named"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # NULL once erased: the keyed hash is not a subject id, so no subject route can reach the
    # kept history through it (a hash is a well-formed subject id of another subject).
    subject_id: Mapped[str | None] = mapped_column(String(256))
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    categories: Mapped[dict[str, bool]] = mapped_column(JSONDocument)
    changed: Mapped[list[str]] = mapped_column(JSONDocument)
    source: Mapped[str] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(35))
    gpc: Mapped[bool] = mapped_column(Boolean)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    # On a learner's record that carried an anonymous visitor's choice over: the receipt id of
    # the visitor's record. Hashed with the record when set (consent/chain.py).
    linked_from: Mapped[str | None] = mapped_column(String(36))
    # Set by erasure, which moves the subject into `subject_hash`: kept as proof until then.
    retained_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Tombstone(Base):
    """An erased subject, known only by its keyed hash: its routes answer 410 from then on."""

    __tablename__ = "tombstones"

    subject_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentLink(Base):
    """An anonymous subject used up by linking it into a learner, once and for good."""

    __tablename__ = "consent_links"
    __table_args__ = (
        # Erasing a learner finds the anonymous subjects linked into it, to erase them too.
        Index("ix_consent_links_linked_to", "linked_to"),
    )

    # The anonymous subject (`anon:<uuid4>`): the primary key lets each be linked once.
    subject_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # The learner it was linked into.
    linked_to: Mapped[str] = mapped_column(String(256))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The learner's record that carried the anonymous choice over, or None when none was.
    receipt_id: Mapped[str | None] = mapped_column(String(36))
