"""Every SQL statement about API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.keys.models import ApiKey

# Built once: every request with an API key runs it.
_FIND_ACTIVE = select(ApiKey.name, ApiKey.scopes).where(
    ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
)


async def find_active(connection: AsyncConnection, key_hash: str) -> tuple[str, list[str]] | None:
    """Name and scopes of the unrevoked key with this hash."""
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
