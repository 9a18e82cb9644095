"""Every SQL statement about integrations, connections and the integration history."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal,
    null,
    select,
    true,
    union_all,
    update,
)

from consentry.consent.models import Tombstone
from consentry.db import Dialect, Query, Reader, Row, UnitOfWork, insert_ignoring_conflicts
from consentry.integrations.models import (
    Connection,
    Integration,
    IntegrationChain,
    IntegrationRecord,
)

# The statuses under which data may flow.
FLOWING = ("approved", "informed")
# Every committed change of a learner's connections is announced here with the subject id, and
# a removed integration with an empty one (see integrations/cache.py).
CHANGES_CHANNEL = "consentry_integrations"
_NOTIFY_PG = "SELECT pg_notify($1, $2)"


async def notify(uow: UnitOfWork, subject_id: str) -> None:
    """Tell every process's connection cache of a change when, and only when, it commits."""
    if uow.dialect == "postgresql":
        await uow.pg_execute(_NOTIFY_PG, CHANGES_CHANNEL, subject_id)


@dataclass(frozen=True, slots=True)
class StoredIntegration:
    """An integration as stored."""

    id: str
    name: str
    kind: str
    provider_id: str
    purpose: str
    data_shared: list[str]
    scopes: list[dict[str, str]]
    default: str
    translations: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """A learner's connection to one integration, as stored."""

    integration_id: str
    status: str
    scopes: list[str]
    source: str
    requested_at: datetime | None
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredIntegrationRecord:
    """One record of a learner's integration history (`seq` is its place in the chain)."""

    id: str
    seq: int
    recorded_at: datetime
    integration_id: str
    status: str
    scopes: list[str]
    source: str
    actor: str
    hash: str
    prev_hash: str | None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a learner's integration history ends: 0 and None before its first record."""

    seq: int
    last_hash: str | None


@dataclass(frozen=True, slots=True)
class Check:
    """What the check before a data exchange found."""

    integration_exists: bool
    erased: bool
    connection: StoredConnection | None


COLUMNS = tuple(Integration.__table__.columns)
_NAMES = tuple(column.key for column in COLUMNS)
_CONNECTION_FIELDS = (
    Connection.status,
    Connection.scopes,
    Connection.source,
    Connection.requested_at,
    Connection.decided_at,
)
CONNECTION_COLUMNS = (Connection.integration_id, *_CONNECTION_FIELDS)
RECORD_COLUMNS = (
    IntegrationRecord.id,
    IntegrationRecord.seq,
    IntegrationRecord.recorded_at,
    IntegrationRecord.integration_id,
    IntegrationRecord.status,
    IntegrationRecord.scopes,
    IntegrationRecord.source,
    IntegrationRecord.actor,
    IntegrationRecord.hash,
    IntegrationRecord.prev_hash,
)

# ---- the catalogue ----

_GET = Query(select(*COLUMNS).where(Integration.id == bindparam("id")))
_LOCK = Query(select(*COLUMNS).where(Integration.id == bindparam("id")).with_for_update())
# A learner's decision reads the declared scopes it is judged by under a shared lock, so a
# concurrent change of the catalogue waits for it (and it for the change).
_SHARE = Query(select(*COLUMNS).where(Integration.id == bindparam("id")).with_for_update(read=True))
_REMOVE = Query(delete(Integration).where(Integration.id == bindparam("id")))


def _insert(dialect: Dialect) -> Query:
    values: dict[str, Any] = {name: bindparam(name) for name in _NAMES}
    statement = insert_ignoring_conflicts(dialect, Integration).values(values)
    return Query(statement.returning(Integration.id))


_INSERT: dict[Dialect, Query] = {dialect: _insert(dialect) for dialect in ("postgresql", "sqlite")}


def _ordered_id(dialect: Dialect) -> ColumnElement[str]:
    """The id as lists order and compare it: byte by byte on every database."""
    return Integration.id.collate("C") if dialect == "postgresql" else Integration.id.expression


def _integration(row: Row | None) -> StoredIntegration | None:
    return None if row is None else StoredIntegration(**row)


async def page(reader: Reader, *, after: str | None, limit: int) -> list[StoredIntegration]:
    """Up to `limit` integrations ordered by id, after `after`."""
    ordered_id = _ordered_id(reader.dialect)
    query = select(*COLUMNS)
    if after is not None:
        query = query.where(ordered_id > after)
    rows = await reader.all(query.order_by(ordered_id).limit(limit))
    return [StoredIntegration(**row) for row in rows]


async def get(reader: Reader, integration_id: str) -> StoredIntegration | None:
    """The integration with this id, or None."""
    return _integration(await reader.one_or_none(_GET, {"id": integration_id}))


async def lock(uow: UnitOfWork, integration_id: str) -> StoredIntegration | None:
    """The integration, locked for a change until the transaction ends (PostgreSQL), or None."""
    return _integration(await uow.one_or_none(_LOCK, {"id": integration_id}))


async def share(uow: UnitOfWork, integration_id: str) -> StoredIntegration | None:
    """The integration, kept from changing until the transaction ends (PostgreSQL), or None."""
    return _integration(await uow.one_or_none(_SHARE, {"id": integration_id}))


async def insert_integration(uow: UnitOfWork, integration: StoredIntegration) -> bool:
    """Insert an integration; False, inserting nothing, when its id is taken."""
    values = {name: getattr(integration, name) for name in _NAMES}
    return await uow.scalar(_INSERT[uow.dialect], values) is not None


async def update_integration(uow: UnitOfWork, integration_id: str, values: dict[str, Any]) -> None:
    """Set some columns of an integration."""
    await uow.execute(update(Integration).where(Integration.id == integration_id).values(values))


async def remove(uow: UnitOfWork, integration_id: str) -> None:
    """Delete an integration and what is left of its connections."""
    await uow.execute(delete(Connection).where(Connection.integration_id == integration_id))
    await uow.execute(_REMOVE, {"id": integration_id})
    # Every learner's check of it was `none` at least: now there is nothing to check.
    await notify(uow, "")


# ---- a learner's connections ----

# The check a service makes before exchanging data, on every sync: the connection, whether the
# integration exists, and the tombstone, in one round trip.
_CHECK = Query(
    select(*_CONNECTION_FIELDS, false().label("erased"))
    .select_from(Integration)
    .outerjoin(
        Connection,
        and_(
            Connection.integration_id == Integration.id,
            Connection.subject_id == bindparam("subject_id"),
        ),
    )
    .where(Integration.id == bindparam("integration_id"))
    .union_all(
        select(*(null() for _ in _CONNECTION_FIELDS), true()).where(
            Tombstone.subject_hash == bindparam("subject_hash")
        )
    )
)


async def check(reader: Reader, subject_id: str, subject_hash: str, integration_id: str) -> Check:
    """The learner's connection to one integration, whether that exists, whether it is erased."""
    rows = await reader.all(
        _CHECK,
        {"subject_id": subject_id, "subject_hash": subject_hash, "integration_id": integration_id},
    )
    if any(row["erased"] for row in rows):
        return Check(integration_exists=False, erased=True, connection=None)
    if not rows:
        return Check(integration_exists=False, erased=False, connection=None)
    row = rows[0]
    connection = None
    if row["status"] is not None:
        connection = StoredConnection(
            integration_id=integration_id,
            status=row["status"],
            scopes=row["scopes"],
            source=row["source"],
            requested_at=row["requested_at"],
            decided_at=row["decided_at"],
        )
    return Check(integration_exists=True, erased=False, connection=connection)


async def subject_page(
    reader: Reader, subject_id: str, *, after: str | None, limit: int
) -> list[tuple[str, StoredConnection | None]]:
    """Up to `limit` integrations by id, after `after`, each with the learner's connection."""
    ordered_id = _ordered_id(reader.dialect)
    query = (
        select(Integration.id.label("id"), *_CONNECTION_FIELDS)
        .select_from(Integration)
        .outerjoin(
            Connection,
            and_(Connection.integration_id == Integration.id, Connection.subject_id == subject_id),
        )
    )
    if after is not None:
        query = query.where(ordered_id > after)
    rows = await reader.all(query.order_by(ordered_id).limit(limit))
    return [
        (
            row["id"],
            None
            if row["status"] is None
            else StoredConnection(
                integration_id=row["id"], **{c.key: row[c.key] for c in _CONNECTION_FIELDS}
            ),
        )
        for row in rows
    ]


_LOCK_CONNECTION = Query(
    select(*CONNECTION_COLUMNS)
    .where(
        Connection.subject_id == bindparam("subject_id"),
        Connection.integration_id == bindparam("integration_id"),
    )
    .with_for_update()
)
_INSERT_CONNECTION = Query(insert(Connection))
_UPDATE_CONNECTION = Query(
    update(Connection)
    .where(
        Connection.subject_id == bindparam("key_subject"),
        Connection.integration_id == bindparam("key_integration"),
    )
    .values({column.key: bindparam(column.key) for column in _CONNECTION_FIELDS})
)


async def lock_connection(
    uow: UnitOfWork, subject_id: str, integration_id: str
) -> StoredConnection | None:
    """The learner's connection to the integration, locked, or None when it has none."""
    row = await uow.one_or_none(
        _LOCK_CONNECTION, {"subject_id": subject_id, "integration_id": integration_id}
    )
    return None if row is None else StoredConnection(**row)


async def save_connection(
    uow: UnitOfWork, subject_id: str, connection: StoredConnection, *, exists: bool
) -> None:
    """Write the connection as it now holds (over the stored one when `exists`)."""
    values = vars_of(connection)
    if exists:
        await uow.execute(
            _UPDATE_CONNECTION,
            {**values, "key_subject": subject_id, "key_integration": connection.integration_id},
        )
    else:
        await uow.execute(_INSERT_CONNECTION, {**values, "subject_id": subject_id})


def vars_of(connection: StoredConnection) -> dict[str, Any]:
    """A connection's fields by name."""
    return {name: getattr(connection, name) for name in StoredConnection.__slots__}


_OF_INTEGRATION = Query(
    select(Connection.subject_id, *CONNECTION_COLUMNS)
    .where(Connection.integration_id == bindparam("integration_id"))
    .order_by(Connection.subject_id)
)


async def connections_to(
    uow: UnitOfWork, integration_id: str
) -> list[tuple[str, StoredConnection]]:
    """Every learner's connection to the integration, by subject id (the integration is locked)."""
    rows = await uow.all(_OF_INTEGRATION, {"integration_id": integration_id})
    return [
        (row["subject_id"], StoredConnection(**{k: v for k, v in row.items() if k != "subject_id"}))
        for row in rows
    ]


_FLOWING_PROVIDERS = Query(
    select(Integration.provider_id)
    .distinct()
    .select_from(Connection)
    .join(Integration, Integration.id == Connection.integration_id)
    .where(Connection.subject_id == bindparam("subject_id"), Connection.status.in_(FLOWING))
)


async def flowing_provider_ids(reader: Reader, subject_id: str) -> list[str]:
    """The providers of the integrations the learner's data may flow to now."""
    rows = await reader.all(_FLOWING_PROVIDERS, {"subject_id": subject_id})
    return sorted(row["provider_id"] for row in rows)


# ---- the history chain ----

_LOCK_CHAIN = Query(
    select(IntegrationChain.seq, IntegrationChain.last_hash)
    .where(IntegrationChain.subject_id == bindparam("subject_id"))
    .with_for_update()
)
_CHAIN_PLACEHOLDER = {
    dialect: Query(
        insert_ignoring_conflicts(dialect, IntegrationChain).values(
            subject_id=bindparam("subject_id"), seq=0, last_hash=None
        )
    )
    for dialect in ("postgresql", "sqlite")
}
_ADVANCE_CHAIN = Query(
    update(IntegrationChain)
    .where(IntegrationChain.subject_id == bindparam("key"))
    .values(seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)
_APPEND = Query(insert(IntegrationRecord))


async def lock_chain(uow: UnitOfWork, subject_id: str) -> ChainHead:
    """Lock the learner's integration history until the transaction ends; where it ends.

    A learner without one gets a placeholder row first, so there is always a row to lock:
    concurrent first writers queue on its primary key. Every writer of a learner's connections
    takes this lock first, so its connections change one at a time, and the chain never forks.
    """
    key = {"subject_id": subject_id}
    row = await uow.one_or_none(_LOCK_CHAIN, key)
    if row is None:
        await uow.execute(_CHAIN_PLACEHOLDER[uow.dialect], key)
        row = await uow.one_or_none(_LOCK_CHAIN, key)
    assert row is not None  # inserted above, or by the writer this one queued behind
    return ChainHead(seq=row["seq"], last_hash=row["last_hash"])


async def append(uow: UnitOfWork, subject_id: str, record: StoredIntegrationRecord) -> None:
    """Append a record to the learner's history and move the chain's end to it."""
    values = {name: getattr(record, name) for name in StoredIntegrationRecord.__slots__}
    await uow.execute(_APPEND, {**values, "subject_id": subject_id})
    await uow.execute(
        _ADVANCE_CHAIN, {"key": subject_id, "new_seq": record.seq, "new_hash": record.hash}
    )
    await notify(uow, subject_id)


def _history(before: bool) -> Query:
    query = select(*RECORD_COLUMNS).where(IntegrationRecord.subject_id == bindparam("subject_id"))
    if before:
        query = query.where(IntegrationRecord.seq < bindparam("before_seq"))
    return Query(query.order_by(IntegrationRecord.seq.desc()).limit(bindparam("limit")))


_HISTORY = {before: _history(before) for before in (False, True)}


async def history(
    reader: Reader, subject_id: str, before_seq: int | None, limit: int
) -> list[StoredIntegrationRecord]:
    """Up to `limit` records of the learner, newest first, older than `before_seq` if given."""
    params = {"subject_id": subject_id, "before_seq": before_seq, "limit": limit}
    rows = await reader.all(_HISTORY[before_seq is not None], params)
    return [StoredIntegrationRecord(**row) for row in rows]


# ---- export and erasure ----

_EXPORT_CONNECTIONS = Query(
    select(*CONNECTION_COLUMNS)
    .where(Connection.subject_id == bindparam("subject_id"))
    .order_by(Connection.integration_id)
)
_EXPORT_HISTORY = Query(
    select(*RECORD_COLUMNS)
    .where(IntegrationRecord.subject_id == bindparam("subject_id"))
    .order_by(IntegrationRecord.seq)
)


async def connections_of(snapshot: Reader, subject_id: str) -> list[StoredConnection]:
    """Every connection the learner has."""
    rows = await snapshot.all(_EXPORT_CONNECTIONS, {"subject_id": subject_id})
    return [StoredConnection(**row) for row in rows]


def records_of(snapshot: Reader, subject_id: str) -> AsyncIterator[Row]:
    """The learner's integration history, oldest first, streamed."""
    return snapshot.stream(_EXPORT_HISTORY, {"subject_id": subject_id}, chunk=1000)


# PostgreSQL: erase_subjects in one round trip, counting connections and records as they go.
_ERASE_PG = """
WITH connections_gone AS (
    DELETE FROM integration_connections WHERE subject_id = ANY($1::text[]) RETURNING subject_id
), records_gone AS (
    DELETE FROM integration_records WHERE subject_id = ANY($1::text[]) RETURNING subject_id
), chains_gone AS (
    DELETE FROM integration_chains WHERE subject_id = ANY($1::text[])
)
SELECT 0 AS kind, subject_id, count(*) AS n FROM connections_gone GROUP BY subject_id
UNION ALL
SELECT 1, subject_id, count(*) FROM records_gone GROUP BY subject_id
"""


async def erase_subjects(uow: UnitOfWork, subject_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Remove the learners' connections and integration history; how many of each, by learner.

    Counted before they go, in the caller's transaction, which keeps every writer of these
    learners out (the erasure lock).
    """
    counts = {subject_id: [0, 0] for subject_id in subject_ids}
    if uow.dialect == "postgresql":
        for row in await uow.pg_rows(_ERASE_PG, list(subject_ids)):
            counts[row["subject_id"]][row["kind"]] = row["n"]
        return {subject_id: (found[0], found[1]) for subject_id, found in counts.items()}
    counted = union_all(
        *(
            select(literal(position).label("kind"), column, func.count().label("n"))
            .where(column.in_(subject_ids))
            .group_by(column)
            for position, column in enumerate((Connection.subject_id, IntegrationRecord.subject_id))
        )
    )
    for row in await uow.all(counted):
        counts[row["subject_id"]][row["kind"]] = row["n"]
    await uow.execute(delete(Connection).where(Connection.subject_id.in_(subject_ids)))
    await uow.execute(
        delete(IntegrationRecord).where(IntegrationRecord.subject_id.in_(subject_ids))
    )
    await uow.execute(delete(IntegrationChain).where(IntegrationChain.subject_id.in_(subject_ids)))
    return {subject_id: (found[0], found[1]) for subject_id, found in counts.items()}
