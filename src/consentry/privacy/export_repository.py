"""The export's reads: every row about one subject, streamed from one read-only snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.consent.models import ConsentRecord, ConsentState
from consentry.consent.repository import RECORD_COLUMNS, STATE_COLUMNS, StoredConsent
from consentry.db import Database
from consentry.events.models import Event
from consentry.events.repository import EVENT_COLUMNS
from consentry.privacy.models import ErasureRequest
from consentry.providers.models import Provider
from consentry.providers.repository import COLUMNS as PROVIDER_COLUMNS

# Rows fetched per round trip: memory stays flat whatever the subject holds.
_CHUNK = 1000

_REQUESTS = tuple(ErasureRequest.__table__.columns)


class ExportReader(Protocol):
    """The reads of one export, all from the same snapshot."""

    async def state(self, subject_id: str) -> StoredConsent | None:
        """The subject's recorded consent, or None."""
        ...

    def history(self, subject_id: str) -> AsyncIterator[dict[str, Any]]:
        """Its consent records, oldest first."""
        ...

    def events(self, subject_id: str) -> AsyncIterator[dict[str, Any]]:
        """Its events, oldest first."""
        ...

    async def erasure_requests(self, subject_hash: str) -> list[dict[str, Any]]:
        """Its erasure requests."""
        ...

    async def providers(self) -> list[dict[str, Any]]:
        """Every provider."""
        ...


@asynccontextmanager
async def export_reader(database: Database) -> AsyncIterator[ExportReader]:
    """A read-only transaction whose snapshot every read of the export shares."""
    if database.pool is not None:
        async with (
            database.driver() as connection,
            connection.transaction(readonly=True, isolation="repeatable_read"),
        ):
            yield _SQLAlchemyReader(None, connection)
        return
    async with database.reader() as connection:
        # A deferred transaction by hand: SQLite's WAL keeps this reader's snapshot to the end.
        await connection.exec_driver_sql("BEGIN")
        try:
            yield _SQLAlchemyReader(connection, None)
        finally:
            await connection.exec_driver_sql("COMMIT")


class _SQLAlchemyReader:
    """SQLAlchemy statements; on PostgreSQL they are compiled and run on the driver's cursor."""

    def __init__(
        self, connection: AsyncConnection | None, driver: asyncpg.Connection | None
    ) -> None:
        self._connection = connection
        self._driver = driver

    async def _rows(self, query: Any) -> AsyncIterator[dict[str, Any]]:
        if self._driver is not None:
            sql, params = _compiled(query)
            async for record in self._driver.cursor(sql, *params, prefetch=_CHUNK):
                yield _decoded(dict(record))
            return
        assert self._connection is not None
        result = await self._connection.stream(query.execution_options(yield_per=_CHUNK))
        async for row in result.mappings():
            yield dict(row)

    async def state(self, subject_id: str) -> StoredConsent | None:
        query = select(*STATE_COLUMNS).where(ConsentState.subject_id == subject_id)
        async for row in self._rows(query):
            return None if row["revision"] == 0 else StoredConsent(**row)
        return None

    def history(self, subject_id: str) -> AsyncIterator[dict[str, Any]]:
        query = (
            select(*RECORD_COLUMNS)
            .where(ConsentRecord.subject_id == subject_id)
            .order_by(ConsentRecord.seq)
        )
        return self._rows(query)

    def events(self, subject_id: str) -> AsyncIterator[dict[str, Any]]:
        query = (
            select(*EVENT_COLUMNS)
            .where(Event.subject_id == subject_id)
            .order_by(Event.occurred_at, Event.event_id)
        )
        return self._rows(query)

    async def erasure_requests(self, subject_hash: str) -> list[dict[str, Any]]:
        query = (
            select(*_REQUESTS)
            .where(ErasureRequest.subject_hash == subject_hash)
            .order_by(ErasureRequest.requested_at)
        )
        return [row async for row in self._rows(query)]

    async def providers(self) -> list[dict[str, Any]]:
        return [row async for row in self._rows(select(*PROVIDER_COLUMNS).order_by(Provider.id))]


_ASYNCPG = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_JSON_COLUMNS = frozenset({"categories", "changed", "properties", "context", "deleted"})
_JSON_COLUMNS_LIST = frozenset({"data_shared", "countries"})


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """The driver returns JSON columns as text."""
    for name in _JSON_COLUMNS | _JSON_COLUMNS_LIST:
        value = row.get(name)
        if isinstance(value, str):
            row[name] = orjson.loads(value)
    return row


def _compiled(query: Any) -> tuple[str, list[Any]]:
    """A SQLAlchemy statement as asyncpg SQL with positional parameters."""
    compiled = query.compile(dialect=_ASYNCPG)
    positions = compiled.positiontup or []
    return str(compiled), [compiled.params[name] for name in positions]
