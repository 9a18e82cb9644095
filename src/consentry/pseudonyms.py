"""Keyed hashes of subject ids: how erased subjects, tombstones and the audit log name them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import Mapped, mapped_column

from consentry.db import Base, Database, Query, insert_ignoring_conflicts
from consentry.pagination import Cursors
from consentry.settings import Settings

_DEVELOPMENT_KEY = "pseudonym_key"
# What the cursor-signing key is derived for: a label, so the key is no pseudonym of anything.
_CURSOR_KEY_LABEL = b"consentry/cursor-signing/v1"
# Subjects whose hash is kept: a batch of events names each of its subjects, and the same
# learners come back batch after batch (about 200 bytes each).
_REMEMBERED = 16_384


class ServiceSecret(Base):
    """A secret the service made for itself, kept so every process and restart shares it."""

    __tablename__ = "service_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


_SECRET = Query(select(ServiceSecret.value).where(ServiceSecret.name == bindparam("name")))


class Pseudonyms:
    """HMAC-SHA256 of a subject id under the service's pseudonym key."""

    def __init__(self, key: bytes) -> None:
        # Derived from the pseudonym key, so every replica that shares it signs alike; one-way,
        # so a cursor's signature tells nothing of the key that names subjects.
        cursor_key = hmac.new(key, _CURSOR_KEY_LABEL, hashlib.sha256).digest()
        self.cursors = Cursors(cursor_key)
        # The key's padded state, computed once: each hash then starts from a copy of it.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self.of: Callable[[str], str] = lru_cache(maxsize=_REMEMBERED)(self._hash)

    def _hash(self, subject_id: str) -> str:
        """The subject's keyed hash, 64 hex digits; the same id always gives the same hash."""
        keyed = self._keyed.copy()
        keyed.update(subject_id.encode())
        return keyed.hexdigest()


class PseudonymSource:
    """The service's Pseudonyms, from `CONSENTRY_PSEUDONYM_KEY` or, in development, the database.

    In development the key is made once and kept in the database, so every process and restart
    shares it; it is read on first use, so the service starts while the database is away.
    Production refuses to start without the setting (see settings.py): a key that lived only in
    the database would go, and every erased subject's tombstone with it, with a restore.
    """

    def __init__(self, settings: Settings, database: Database) -> None:
        self._database = database
        self._loaded = (
            Pseudonyms(settings.pseudonym_key.encode()) if settings.pseudonym_key else None
        )

    async def get(self) -> Pseudonyms:
        """The pseudonyms; reads (or makes) the development key on first use."""
        if self._loaded is None:
            self._loaded = Pseudonyms((await self._development_key()).encode())
        return self._loaded

    async def _development_key(self) -> str:
        async with self._database.unit_of_work() as uow:
            # Any number of processes may start at once: the first key written is everyone's.
            await uow.execute(
                insert_ignoring_conflicts(uow.dialect, ServiceSecret).values(
                    name=_DEVELOPMENT_KEY, value=secrets.token_hex(32)
                )
            )
            value = await uow.scalar(_SECRET, {"name": _DEVELOPMENT_KEY})
        assert isinstance(value, str)  # written above, or by whoever won the race
        return value


async def pseudonyms_of(request: Request) -> Pseudonyms:
    """The app's pseudonyms."""
    source: PseudonymSource = request.app.state.pseudonyms
    return await source.get()


# Declared before a route's unit of work, so that the first request of a development process,
# which may have to write the key, does so before its own transaction holds the database.
PseudonymsDep = Annotated[Pseudonyms, Depends(pseudonyms_of)]


async def cursors_of(request: Request) -> Cursors:
    """The app's cursors, signed with a key derived from the pseudonym key."""
    return (await pseudonyms_of(request)).cursors


CursorsDep = Annotated[Cursors, Depends(cursors_of)]
