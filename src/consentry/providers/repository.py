"""Every SQL statement about providers."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, or_, select, update

from consentry.db import Dialect, Query, Reader, Row, UnitOfWork, insert_ignoring_conflicts
from consentry.providers.models import Provider


@dataclass(frozen=True, slots=True)
class StoredProvider:
    """A provider as stored."""

    id: str
    name: str
    kind: str
    purpose: str
    data_shared: list[str]
    category: str
    countries: list[str]
    transfer_mechanism: str | None
    opt_out_url: str | None
    translations: dict[str, Any]
    created_at: datetime
    updated_at: datetime


# A provider as clients see it.
COLUMNS = (
    Provider.id,
    Provider.name,
    Provider.kind,
    Provider.purpose,
    Provider.data_shared,
    Provider.category,
    Provider.countries,
    Provider.transfer_mechanism,
    Provider.opt_out_url,
    Provider.translations,
    Provider.created_at,
    Provider.updated_at,
)
_NAMES = tuple(column.key for column in COLUMNS)

_GET = Query(select(*COLUMNS).where(Provider.id == bindparam("id")))
_LOCK = Query(select(*COLUMNS).where(Provider.id == bindparam("id")).with_for_update())
_REMOVE = Query(delete(Provider).where(Provider.id == bindparam("id")))


def _insert(dialect: Dialect) -> Query:
    values: dict[str, Any] = {name: bindparam(name) for name in _NAMES}
    return Query(insert_ignoring_conflicts(dialect, Provider).values(values).returning(Provider.id))


# ON CONFLICT is spelled alike, but each dialect's insert construct is its own.
_INSERT: dict[Dialect, Query] = {dialect: _insert(dialect) for dialect in ("postgresql", "sqlite")}


def _ordered_id(dialect: Dialect) -> ColumnElement[str]:
    """The id as the list orders and compares it: byte by byte."""
    # PostgreSQL's locale would sort hyphens its own way (SQLite compares bytes); in "C" the order,
    # and a cursor's place in it, is the same on every database.
    return Provider.id.collate("C") if dialect == "postgresql" else Provider.id.expression


def _stored(row: Row) -> StoredProvider:
    return StoredProvider(**row)


async def page(
    reader: Reader,
    *,
    after: str | None,
    categories: Collection[str] | None,
    limit: int,
    ids: Collection[str] = (),
) -> list[StoredProvider]:
    """Up to `limit` providers ordered by id, after `after`, in `categories` (or `ids`) if given."""
    ordered_id = _ordered_id(reader.dialect)
    query = select(*COLUMNS)
    if categories is not None:
        among = Provider.category.in_(categories)
        query = query.where(or_(among, Provider.id.in_(ids)) if ids else among)
    if after is not None:
        query = query.where(ordered_id > after)
    rows = await reader.all(query.order_by(ordered_id).limit(limit))
    return [_stored(row) for row in rows]


async def get(reader: Reader, provider_id: str) -> StoredProvider | None:
    """The provider with this id, or None."""
    row = await reader.one_or_none(_GET, {"id": provider_id})
    return None if row is None else _stored(row)


async def lock(uow: UnitOfWork, provider_id: str) -> StoredProvider | None:
    """The provider with this id, locked until the transaction ends (PostgreSQL), or None."""
    row = await uow.one_or_none(_LOCK, {"id": provider_id})
    return None if row is None else _stored(row)


async def insert(uow: UnitOfWork, provider: StoredProvider) -> bool:
    """Insert a provider; False, inserting nothing, when its id is taken (even concurrently)."""
    values = {name: getattr(provider, name) for name in _NAMES}
    return await uow.scalar(_INSERT[uow.dialect], values) is not None


async def update_fields(uow: UnitOfWork, provider_id: str, values: dict[str, Any]) -> None:
    """Set some columns of a provider."""
    await uow.execute(update(Provider).where(Provider.id == provider_id).values(values))


async def remove(uow: UnitOfWork, provider_id: str) -> None:
    """Delete a provider."""
    await uow.execute(_REMOVE, {"id": provider_id})
