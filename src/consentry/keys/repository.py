"""Every SQL statement about API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from consentry.db import Database
from consentry.keys.models import ApiKey

# Built once: every request with an API key runs it.
_FIND_ACTIVE = select(ApiKey.name, ApiKey.scopes).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


_FIND_ACTIVE_PG = """
SELECT name, scopes::text FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
"""


async def find_active(database: Database, key_hash: str) -> tuple[str, list[str]] | None:
    """Name and scopes of the unrevoked key with this hash."""
    if database.pool is not None:
        record = await database.fetchrow(_FIND_ACTIVE_PG, key_hash)
        return None if record is None else (record[0], orjson.loads(record[1]))
    async with database.reader() as connection:
        row = (await connection.execute(_FIND_ACTIVE, {"key_hash": key_hash})).one_or_none()
    return None if row is None else (row.name, list(row.scopes))


async def name_taken(session: AsyncSession, name: str) -> bool:
    """Whether a key, revoked or not, already has this name."""
    found = await session.scalar(select(ApiKey.id).where(ApiKey.name == name))
    return found is not None


def add(session: AsyncSession, key: ApiKey) -> None:
    """Stage a new key."""
    session.add(key)


async def list_all(session: AsyncSession) -> Sequence[ApiKey]:
    """Every key, oldest first."""
    return (await session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()


async def revoke(session: AsyncSession, name: str, at: datetime) -> bool:
    """Mark the named key revoked; False when there is no such active key."""
    result = await session.execute(
        update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
