"""Database engine, sessions, column types and the small seam between SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from consentry.errors import ServiceUnavailable
from consentry.settings import Settings

log = logging.getLogger(__name__)

# aiosqlite logs every call with its arguments at DEBUG, the statement's values among them; like
# SQLAlchemy for its own loggers, it stays quieter unless configured otherwise on purpose.
if logging.getLogger("aiosqlite").level == logging.NOTSET:
    logging.getLogger("aiosqlite").setLevel(logging.INFO)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose constraints get predictable names in every migration."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        # SQLite keeps no offset; everything in it is UTC by this rule.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one textual form of time the service emits."""
    # isoformat() is several times faster than strftime() and gives the same text.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def insert_ignoring_conflicts(dialect_name: str, table: Any) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` in the dialect at hand."""
    insert = pg_insert if dialect_name == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()


# How the read cache's listening connection names itself to PostgreSQL (pg_stat_activity).
LISTENER_NAME = "consentry-cache-listener"


@dataclass(frozen=True)
class Database:
    """The engine and the two ways the service talks to it: write sessions and read connections."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    # PostgreSQL only: the driver's own pool for the hot paths (consent reads, event batches),
    # where SQLAlchemy's per-statement overhead would cost more than the database round trip.
    pool: asyncpg.Pool | None = None
    # The driver's connection string; it may hold the password, so it stays out of reprs.
    dsn: str = field(default="", repr=False)
    # Turns at the driver pool in arrival order. The pool's own queue lets a newcomer take a
    # connection just released to a waiter, which sends the waiter to the back: under load a
    # few requests waited for hundreds of milliseconds while most waited none.
    turns: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    # How long to wait for PostgreSQL to connect or answer (CONSENTRY_DATABASE_TIMEOUT_SECONDS).
    timeout: float = 10.0

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the driver pool (PostgreSQL only), handed out first come first served."""
        assert self.pool is not None
        await self._take_turn()
        try:
            # A turn guarantees a connection: there are as many turns as the pool holds.
            async with self.pool.acquire() as connection:
                yield connection
        finally:
            self.turns.release()

    async def _take_turn(self) -> None:
        """A turn at the driver pool, waiting at most the database timeout for one."""
        if not self.turns.locked():
            await self.turns.acquire()  # at once: no timer on the hot path's usual case
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self.turns.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                "No database connection came free in time; try again shortly."
            ) from None

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """One row from the driver pool (PostgreSQL only)."""
        async with self.driver() as connection:
            return await connection.fetchrow(query, *args)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit mode: one round trip per read, no transaction."""
        async with self.read_engine.connect() as connection:
            yield connection

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pools (PostgreSQL only), to LISTEN on."""
        return await asyncpg.connect(
            self.dsn, timeout=self.timeout, server_settings={"application_name": LISTENER_NAME}
        )

    async def dispose(self) -> None:
        """Close every pooled connection; drop them when the database no longer answers."""
        answers = True
        if self.pool is not None:
            try:
                await self.pool.close()
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
                # The pool has dropped its connections itself.
                log.warning("database connections dropped at shutdown (%s)", type(exc).__name__)
                answers = False
        # Closing the engine's connections one by one would wait out the timeout for each.
        await self.engine.dispose(close=answers)


def create_database(settings: Settings) -> Database:
    """Build the engine for `CONSENTRY_DATABASE_URL`."""
    # No pre-ping: it would add a round trip to every checkout on the hot paths. A connection
    # found dead raises a disconnect error, which invalidates the pool and answers 503 once.
    # hide_parameters: an error's text would otherwise carry the statement's bound values
    # (subject ids, addresses, user agents) into whatever logs or reports it.
    kwargs: dict[str, Any] = {"pool_recycle": 1800, "hide_parameters": True}
    if settings.is_sqlite:
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
    else:
        kwargs["pool_size"] = settings.database_pool_size
        kwargs["max_overflow"] = settings.database_max_overflow
        # A database that stopped answering (a partition, a dead peer that sent no reset) costs
        # a request this long, then a 503, rather than the kernel's TCP timeouts.
        timeout = settings.database_timeout_seconds
        kwargs["pool_timeout"] = timeout
        kwargs["connect_args"] = {"timeout": timeout, "command_timeout": timeout}
    engine = create_async_engine(settings.database_url, **kwargs)
    if settings.is_sqlite:
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
    return Database(
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
        read_engine=engine.execution_options(isolation_level="AUTOCOMMIT"),
        timeout=settings.database_timeout_seconds,
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a connection as it is (the pool has already rolled back an open transaction).

    The driver's default reset is a round trip per release (UNLISTEN, RESET ALL, advisory
    unlocks) for session state this service never creates, and it doubled the cost of a read.
    """


def driver_dsn(database_url: str) -> str:
    """The driver's own DSN for a SQLAlchemy PostgreSQL URL.

    The engine takes TLS as `?ssl=require` (a keyword of the driver's connect), while the
    driver reads a DSN parameter it does not know as a server setting, and PostgreSQL refuses
    to set `ssl` per session: in a DSN the same mode is `sslmode`.
    """
    url = make_url(database_url).set(drivername="postgresql")
    if "ssl" in url.query:
        mode = url.query["ssl"]
        url = url.difference_update_query(["ssl"]).update_query_dict({"sslmode": mode})
    return url.render_as_string(hide_password=False)


async def open_database(settings: Settings) -> Database:
    """The engine, and on PostgreSQL the driver pool beside it."""
    database = create_database(settings)
    if settings.is_sqlite:
        return database
    dsn_text = driver_dsn(settings.database_url)
    pool = await asyncpg.create_pool(
        dsn_text,
        # No connection at startup: the service starts while the database is away and answers
        # 503 until it returns, like the engine, which also connects on first use.
        min_size=0,
        max_size=settings.database_pool_size,
        timeout=settings.database_timeout_seconds,
        command_timeout=settings.database_timeout_seconds,
        reset=_keep_session,
        max_inactive_connection_lifetime=1800,
    )
    turns = asyncio.Semaphore(settings.database_pool_size)
    return replace(database, pool=pool, dsn=dsn_text, turns=turns)


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, and write transactions that take the lock up front."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN would be DEFERRED; the "begin" hook below replaces it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers queue on the database lock at BEGIN rather than failing with "database is
        # locked" when a read transaction tries to upgrade; reads run in autocommit instead.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def database_of(request: Request) -> Database:
    """The database built in the app's lifespan."""
    database: Database = request.app.state.database
    return database


async def get_database(request: Request) -> Database:
    """The database, as a dependency (async, so FastAPI need not hop to a worker thread)."""
    return database_of(request)


DatabaseDep = Annotated[Database, Depends(get_database)]
