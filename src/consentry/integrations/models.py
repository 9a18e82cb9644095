"""Tables of integrations: the catalogue, each learner's connections, and their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime


class Integration(Base):
    """An outside tool or school system the platform can connect a learner's data with."""

    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    # Who receives the data: a provider of the registry, which may not go while this names it.
    provider_id: Mapped[str] = mapped_column(String(64), ForeignKey("providers.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(1000))
    data_shared: Mapped[list[str]] = mapped_column(JSONDocument)
    # [{"id": "files.write", "description": "..."}], in the order the privacy team wrote them.
    scopes: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument)
    default: Mapped[str] = mapped_column(String(8))
    # {"de": {"name": ..., "purpose": ..., "scopes": {"files.write": ...}}}
    translations: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Connection(Base):
    """A learner's connection to one integration: what holds now ("none" has no row)."""

    __tablename__ = "integration_connections"
    __table_args__ = (Index("ix_integration_connections_integration_id", "integration_id"),)

    subject_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    integration_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("integrations.id"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSONDocument)
    source: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IntegrationChain(Base):
    """Where a learner's integration history ends: the row every writer of it locks first."""

    __tablename__ = "integration_chains"

    subject_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    # 0 only inside the transaction that writes a learner's first record (a lock placeholder).
    seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str | None] = mapped_column(String(64))


class IntegrationRecord(Base):
    """One request, notice, decision or revocation, chained to the learner's previous record."""

    __tablename__ = "integration_records"
    # One record per position in a learner's chain: two writers can never fork it.
    __table_args__ = (UniqueConstraint("subject_id", "seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(256))
    seq: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Not a foreign key: the record outlives a deleted integration, as proof of what was shared.
    integration_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSONDocument)
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
