"""Every SQL statement about API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
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


# Every revocation is announced here, in its own transaction, with a notice of its own; each
# process that keeps keys answers the notice on the second channel once it has dropped them
# (see keys/cache.py).
CHANGES_CHANNEL = "consentry_keys"
HEARD_CHANNEL = "consentry_keys_heard"
_ANNOUNCE_PG = "SELECT pg_notify($1, $2)"
_SESSIONS_PG = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE application_name = $1 AND datname = current_database()"
)

# Every request with an API key whose key is not cached runs it.
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


async def revoke(uow: UnitOfWork, name: str, at: datetime, notice: str = "") -> bool:
    """Mark the named key revoked, announcing `notice` to every process that keeps keys once
    it commits; False when there is no such active key."""
    if await uow.execute(_REVOKE, {"key_name": name, "at": at}) == 0:
        return False
    if uow.dialect == "postgresql":
        await uow.pg_execute(_ANNOUNCE_PG, CHANGES_CHANNEL, notice)
    return True


async def answer(reader: Reader, notice: str) -> None:
    """Tell the revoker that announced `notice` that this process no longer keeps keys."""
    await reader.pg_execute(_ANNOUNCE_PG, HEARD_CHANNEL, notice)


async def sessions(connection: asyncpg.Connection, application_name: str) -> int:
    """How many sessions with this name are connected to the database (PostgreSQL only)."""
    count: int = await connection.fetchval(_SESSIONS_PG, application_name)
    return count
