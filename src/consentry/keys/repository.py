"""Every SQL statement about API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update

from consentry.db import Query, Reader, UnitOfWork
from consentry.keys.models import ApiKey


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """What a request's key may do: its id, name and scopes."""

    id: str
    name: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key as stored, but for its hash."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


# Every request with an API key runs it.
_FIND_ACTIVE = Query(
    select(ApiKey.id, ApiKey.name, ApiKey.scopes).where(
        ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None)
    )
)
_NAME_TAKEN = Query(select(ApiKey.id).where(ApiKey.name == bindparam("name")))
_ADD = Query(
    insert(ApiKey).values(
        {
            column: bindparam(column)
            for column in ("id", "name", "key_hash", "prefix", "scopes", "created_at")
        }
    )
)
_LIST_ALL = Query(
    select(
        ApiKey.id,
        ApiKey.name,
        ApiKey.prefix,
        ApiKey.scopes,
        ApiKey.created_at,
        ApiKey.revoked_at,
    ).order_by(ApiKey.created_at)
)
_REVOKE = Query(
    update(ApiKey)
    .where(ApiKey.name == bindparam("key_name"), ApiKey.revoked_at.is_(None))
    .values(revoked_at=bindparam("at"))
)


async def find_active(reader: Reader, key_hash: str) -> ActiveKey | None:
    """The unrevoked key with this hash, or None."""
    row = await reader.one_or_none(_FIND_ACTIVE, {"key_hash": key_hash})
    return None if row is None else ActiveKey(row["id"], row["name"], frozenset(row["scopes"]))


async def name_taken(uow: UnitOfWork, name: str) -> bool:
    """Whether a key, revoked or not, already has this name."""
    return await uow.scalar(_NAME_TAKEN, {"name": name}) is not None


async def add(uow: UnitOfWork, key: StoredKey, key_hash: str) -> None:
    """Store a new, unrevoked key under the hash of its plaintext."""
    await uow.execute(
        _ADD,
        {
            "id": key.id,
            "name": key.name,
            "key_hash": key_hash,
            "prefix": key.prefix,
            "scopes": key.scopes,
            "created_at": key.created_at,
        },
    )


async def list_all(reader: Reader) -> list[StoredKey]:
    """Every key, oldest first."""
    return [StoredKey(**row) for row in await reader.all(_LIST_ALL)]


async def revoke(uow: UnitOfWork, name: str, at: datetime) -> bool:
    """Mark the named key revoked; False when there is no such active key."""
    return await uow.execute(_REVOKE, {"key_name": name, "at": at}) > 0
