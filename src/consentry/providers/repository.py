"""Every SQL statement about providers."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from consentry.db import insert_ignoring_conflicts
from consentry.providers.models import Provider

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
    Provider.created_at,
    Provider.updated_at,
)


def _ordered_id(dialect_name: str) -> ColumnElement[str]:
    """The id as the list orders and compares it: byte by byte."""
    # PostgreSQL's locale would sort hyphens its own way (SQLite compares bytes); in "C" the order,
    # and a cursor's place in it, is the same on every database.
    return Provider.id.collate("C") if dialect_name == "postgresql" else Provider.id.expression


async def page(
    connection: AsyncConnection,
    *,
    after: str | None,
    categories: Collection[str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit` providers ordered by id, after `after`, in `categories` if given."""
    ordered_id = _ordered_id(connection.dialect.name)
    query = select(*COLUMNS)
    if categories is not None:
        query = query.where(Provider.category.in_(categories))
    if after is not None:
        query = query.where(ordered_id > after)
    rows = await connection.execute(query.order_by(ordered_id).limit(limit))
    return [dict(row._mapping) for row in rows]


async def get(connection: AsyncConnection, provider_id: str) -> dict[str, Any] | None:
    """The provider with this id, or None."""
    row = (await connection.execute(select(*COLUMNS).where(Provider.id == provider_id))).first()
    return dict(row._mapping) if row is not None else None


async def lock(session: AsyncSession, provider_id: str) -> dict[str, Any] | None:
    """The provider with this id, locked until the transaction ends (PostgreSQL), or None."""
    query = select(*COLUMNS).where(Provider.id == provider_id).with_for_update()
    row = (await session.execute(query)).first()
    return dict(row._mapping) if row is not None else None


async def insert(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a provider; False, inserting nothing, when its id is taken (even concurrently)."""
    dialect_name = session.get_bind().dialect.name
    statement = insert_ignoring_conflicts(dialect_name, Provider).values(values)
    inserted = await session.scalar(statement.returning(Provider.id))
    return inserted is not None


async def update_fields(session: AsyncSession, provider_id: str, values: dict[str, Any]) -> None:
    """Set some columns of a provider."""
    await session.execute(update(Provider).where(Provider.id == provider_id).values(values))


async def remove(session: AsyncSession, provider_id: str) -> None:
    """Delete a provider."""
    await session.execute(delete(Provider).where(Provider.id == provider_id))
