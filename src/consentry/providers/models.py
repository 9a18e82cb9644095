"""The providers table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, JSONDocument, UTCDateTime


class Provider(Base):
    """A third party that receives data, what it receives and why, and which category governs it."""

    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(1000))
    data_shared: Mapped[list[str]] = mapped_column(JSONDocument)
    category: Mapped[str] = mapped_column(String(16))
    countries: Mapped[list[str]] = mapped_column(JSONDocument)
    transfer_mechanism: Mapped[str | None] = mapped_column(String(64))
    opt_out_url: Mapped[str | None] = mapped_column(String(512))
    # {language: {"name", "purpose", "data_shared": {item: label}}}; the default lets a release
    # that does not know the column still add providers during a rolling upgrade.
    translations: Mapped[dict[str, Any]] = mapped_column(JSONDocument, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
