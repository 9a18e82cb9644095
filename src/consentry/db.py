"""The data-access seam: the dialect, chosen once; one pool; units of work and readers.

Every statement runs through here. A statement written once as SQLAlchemy Core is compiled once
per dialect and run on the raw driver where that is fast (asyncpg), through SQLAlchemy where the
driver needs its type handling (aiosqlite). What truly differs between the databases (COPY,
advisory locks, LISTEN/NOTIFY, SKIP LOCKED) is asked for with `uow.dialect` in a repository,
next to the other dialect's way. Driver exceptions become the few this module defines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

import asyncpg
import orjson
from fastapi import Depends, Request
from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator

from consentry.errors import ServiceUnavailable
from consentry.settings import Settings
from consentry.turns import NoTurn, Turns

log = logging.getLogger(__name__)

Dialect = Literal["postgresql", "sqlite"]
# A row of a result: a mapping of column name to value, whichever the driver.
Row = Mapping[str, Any]

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

    def process_bind_param(self, value: datetime | None, dialect: SQLDialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        # SQLite keeps no offset; everything in it is UTC by this rule.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: SQLDialect) -> datetime | None:
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


# ---- errors of the driver, as the rest of the service knows them ----


class ConstraintViolation(Exception):
    """A write broke a constraint of the schema."""


class UniqueViolation(ConstraintViolation):
    """A write met a stored row with the same key."""


class Deadlock(ServiceUnavailable):
    """The database broke a deadlock by rolling this transaction back: the client retries."""

    def __init__(self, detail: str = "The request met concurrent writes; retry it.") -> None:
        super().__init__(detail)


_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.QueryCanceledError,
    asyncpg.AdminShutdownError,
    # A database without the schema cannot serve until it is migrated; SQLite says the same
    # with an OperationalError ("no such table"), just below.
    asyncpg.UndefinedTableError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def _translated(error: BaseException) -> BaseException:
    """The seam's own exception for a driver's, or the error itself when it has none."""
    if isinstance(error, asyncpg.UniqueViolationError):
        return UniqueViolation(type(error).__name__)
    if isinstance(error, asyncpg.DeadlockDetectedError):
        return Deadlock()
    if isinstance(error, sa_exc.IntegrityError):
        unique = "UNIQUE" in str(error.orig)
        return (UniqueViolation if unique else ConstraintViolation)(type(error.orig).__name__)
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return ConstraintViolation(type(error).__name__)
    if isinstance(error, _UNAVAILABLE):
        return ServiceUnavailable()
    return error


@asynccontextmanager
async def _translating() -> AsyncIterator[None]:
    try:
        yield
    except ServiceUnavailable:
        raise
    except Exception as error:
        translated = _translated(error)
        if translated is error:
            raise
        if isinstance(translated, ServiceUnavailable):
            # Its 503 says nothing of the cause; the operator's log must.
            log.warning("database unavailable: %s", type(error).__name__)
        # The driver's error stays the cause: logs name its class (never its message).
        raise translated from error


# ---- statements compiled once per dialect ----

_PG = postgresql.asyncpg.dialect(  # type: ignore[no-untyped-call]
    json_serializer=lambda value: orjson.dumps(value).decode()
)


@dataclass(frozen=True, slots=True)
class _PgStatement:
    """A statement as asyncpg runs it: SQL with $n, and how to fill each position."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        values = []
        for name, default, process in zip(self.names, self.defaults, self.processors, strict=True):
            value = params[name] if params is not None and name in params else default
            values.append(process(value) if process is not None and value is not None else value)
        return values


def _compile_pg(statement: Executable, *, once: bool = False) -> _PgStatement:
    compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=_PG))
    if not compiled.post_compile_params:
        names = tuple(compiled.positiontup or ())
        processors = tuple(
            compiled.binds[name].type.dialect_impl(_PG).bind_processor(_PG) for name in names
        )
        defaults = tuple(compiled.params.get(name) for name in names)
        return _PgStatement(str(compiled), names, defaults, processors)
    if once and any(param.value is None for param in compiled.post_compile_params):
        # A list given per call would be fixed at its first values: such a statement is built
        # per call. A constant list (`status IN ('pending', ...)`) is expanded once, here.
        raise ValueError("a statement built once cannot take a list of values per call")
    # `column.in_(values)` is one parameter per value, rendered once the values are known: the
    # expanded state is the SQL asyncpg runs, with each value's parameter named after its list's.
    # Values of the other parameters come per call; None stands in for them here.
    expanded = compiled.construct_expanded_state(params=dict(compiled.params))
    lists = {item: name for name, items in expanded.parameter_expansion.items() for item in items}
    names = tuple(expanded.positiontup or ())
    processors = tuple(
        compiled.binds[lists.get(name, name)].type.dialect_impl(_PG).bind_processor(_PG)
        for name in names
    )
    defaults = tuple(expanded.parameters.get(name) for name in names)
    return _PgStatement(expanded.statement, names, defaults, processors)


class Query:
    """A Core statement built once, at import, and compiled once for the dialect in use."""

    __slots__ = ("_pg", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._pg: _PgStatement | None = None

    def pg(self) -> _PgStatement:
        """The statement compiled for asyncpg (on first use)."""
        if self._pg is None:
            self._pg = _compile_pg(self.statement, once=True)
        return self._pg


Statement = Query | Executable


def _pg_of(statement: Statement) -> _PgStatement:
    # A statement built per call (a list's filters) is compiled per call: those are cold paths.
    return statement.pg() if isinstance(statement, Query) else _compile_pg(statement)


def _core_of(statement: Statement) -> Executable:
    return statement.statement if isinstance(statement, Query) else statement


def _rowcount(status: str) -> int:
    """The row count of asyncpg's command tag ("UPDATE 3")."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


# ---- the two ways to reach the database ----


class Reader:
    """A pooled connection: statements run one by one, each its own transaction unless inside one.

    For reads on hot paths (one round trip, no BEGIN/COMMIT); writes belong in a UnitOfWork.
    """

    def __init__(
        self,
        dialect: Dialect,
        driver: asyncpg.Connection | None = None,
        connection: AsyncConnection | None = None,
    ) -> None:
        self.dialect: Dialect = dialect
        self._driver = driver
        self._connection = connection

    async def _ready(self) -> None:
        """Make sure there is a connection to run on (a unit of work begins on first use)."""

    async def all(self, statement: Statement, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Every row of a query."""
        await self._ready()
        async with _translating():
            if self._driver is not None:
                compiled = _pg_of(statement)
                rows: list[Row] = await self._driver.fetch(
                    compiled.sql, *compiled.arguments(params)
                )
                return rows
            assert self._connection is not None
            result = await self._connection.execute(_core_of(statement), params)
            # Its keys are the column names: a RowMapping is a Row by this module's meaning.
            return cast(list[Row], result.mappings().all())

    async def one_or_none(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> Row | None:
        """The first row of a query, or None."""
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def scalar(self, statement: Statement, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        row = await self.one_or_none(statement, params)
        return None if row is None else next(iter(row.values()))

    async def execute(self, statement: Statement, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement; the number of rows it changed."""
        await self._ready()
        async with _translating():
            if self._driver is not None:
                compiled = _pg_of(statement)
                status: str = await self._driver.execute(compiled.sql, *compiled.arguments(params))
                return _rowcount(status)
            assert self._connection is not None
            result = await self._connection.execute(_core_of(statement), params)
            return int(result.rowcount)

    async def execute_many(self, statement: Statement, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per set of parameters, in one call to the driver."""
        if not params:
            return
        await self._ready()
        async with _translating():
            if self._driver is not None:
                compiled = _pg_of(statement)
                await self._driver.executemany(
                    compiled.sql, [compiled.arguments(p) for p in params]
                )
                return
            assert self._connection is not None
            await self._connection.execute(_core_of(statement), list(params))

    async def stream(
        self, statement: Statement, params: Mapping[str, Any] | None = None, *, chunk: int = 1000
    ) -> AsyncIterator[Row]:
        """The rows of a query, fetched `chunk` at a time (inside a transaction or snapshot)."""
        await self._ready()
        async with _translating():
            if self._driver is not None:
                compiled = _pg_of(statement)
                cursor = self._driver.cursor(
                    compiled.sql, *compiled.arguments(params), prefetch=chunk
                )
                async for record in cursor:
                    yield record
                return
            assert self._connection is not None
            core = _core_of(statement).execution_options(yield_per=chunk)
            result = await self._connection.stream(core, params)
            async for row in result.mappings():
                yield cast(Row, row)

    # PostgreSQL's own statements, for what only it does (arrays, COPY, NOTIFY, advisory locks):
    # a repository calls these only where `dialect` is "postgresql".

    async def _pg(self) -> asyncpg.Connection:
        await self._ready()
        if self._driver is None:
            raise RuntimeError("PostgreSQL's own statements run on PostgreSQL only")
        return self._driver

    async def pg_rows(self, sql: str, *args: Any) -> list[Any]:
        """The rows of a PostgreSQL statement with `$n` parameters (by name or position)."""
        driver = await self._pg()
        async with _translating():
            rows: list[Any] = await driver.fetch(sql, *args)
            return rows

    async def pg_execute(self, sql: str, *args: Any) -> None:
        """Run a PostgreSQL statement with `$n` parameters."""
        driver = await self._pg()
        async with _translating():
            await driver.execute(sql, *args)


class UnitOfWork(Reader):
    """One transaction that knows its dialect: it commits when its block ends without error.

    Requests that write get one from `UnitOfWorkDep`; the worker and the CLI open one with
    `Database.unit_of_work()`. Services take it as their first argument and never begin or
    commit. It begins on its first statement, so a request refused before it reaches the
    database (a body that fails validation, say) never holds a connection or a lock; a change
    that one statement makes can do without BEGIN and COMMIT (`read_ahead`, then
    `pg_all_or_nothing`).
    """

    def __init__(self, database: Database) -> None:
        super().__init__(database.dialect)
        self._database = database
        self._stack = contextlib.AsyncExitStack()
        self._transaction: _PgTransaction | None = None
        # Set once a statement made the whole change (`pg_all_or_nothing`): none may follow.
        self._settled = False
        self.committed: list[Callable[[], None]] = []
        self.rolled_back: list[Callable[[], None]] = []

    @property
    def begun(self) -> bool:
        """Whether a statement has run in a transaction, and so one is open."""
        return self._transaction is not None or self._connection is not None

    @property
    def server_process(self) -> int:
        """The id of the database server process running this unit of work's statements: the
        sender its notices name. 0 before the first statement, and on SQLite."""
        return self._driver.get_server_pid() if self._driver is not None else 0

    @property
    def committed_alone(self) -> bool:
        """Whether a statement of its own committed the change, with no transaction begun."""
        return self._settled and not self.begun

    async def _ready(self) -> None:
        if self._settled:
            raise RuntimeError("no statement may follow the one that made the whole change")
        if not self.begun:
            await self._begin()

    async def _begin(self, first: str = "") -> None:
        database = self._database
        database.transactions += 1
        if database.pool is not None:
            driver = await self._pg_connection()
            # Begun by hand rather than by the driver's Transaction, so that BEGIN can carry the
            # first statement. Kept before it is sent: a BEGIN that fails is rolled back too.
            self._transaction = _PgTransaction(driver)
            async with _translating():
                await driver.execute(f"BEGIN;{first}")
            return
        assert database.engine is not None
        # The "begin" hook below makes it BEGIN IMMEDIATE: writers queue for SQLite's lock.
        async with _translating():
            self._connection = await self._stack.enter_async_context(database.engine.begin())

    async def _end(self, failed: bool) -> None:
        """Commit (or, after an error, roll back) what was begun, and give the connection back."""
        try:
            if self._transaction is not None:
                if failed:
                    # A connection the database dropped cannot roll back; the pool discards it.
                    with contextlib.suppress(Exception):
                        await self._transaction.rollback()
                else:
                    async with _translating():
                        await self._transaction.commit()
                    self._run_committed()
        finally:
            if failed:
                with contextlib.suppress(Exception):
                    await self._give_back()
                with contextlib.suppress(Exception):
                    await self._stack.__aexit__(RuntimeError, RuntimeError("rolled back"), None)
            else:
                async with _translating():
                    await self._give_back()
                    await self._stack.aclose()

    async def _pg_connection(self) -> asyncpg.Connection:
        """The pooled connection of this unit of work, taken on first need, no transaction begun."""
        # Lent and given back by hand, not through the exit stack: every write takes one, and
        # the stack's context managers cost more than the pool's own work.
        if self._driver is None:
            self._driver = await self._database._lend()
        return self._driver

    async def _give_back(self) -> None:
        """Return the pooled connection, if one was taken."""
        driver, self._driver = self._driver, None
        if driver is not None:
            await self._database._take_back(driver)

    async def read_ahead(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[Row]:
        """Rows read for a change that is then made only if they still hold when it is written.

        On PostgreSQL, until the transaction begins, the read runs alone on the connection the
        transaction will use: a round trip without BEGIN, whose rows may change before the write,
        so the write checks them (a revision, say; see `pg_all_or_nothing`). Once begun, and on
        SQLite, whose BEGIN IMMEDIATE already makes this the only writer, it runs in the
        transaction.
        """
        if self.dialect == "sqlite" or self.begun or self._settled:
            return await self.all(statement, params)
        driver = await self._pg_connection()
        compiled = _pg_of(statement)
        async with _translating():
            rows: list[Row] = await driver.fetch(compiled.sql, *compiled.arguments(params))
            return rows

    async def pg_all_or_nothing(self, sql: str, *args: Any) -> list[Any]:
        """The rows of a PostgreSQL statement that makes its whole change or none of it, and says
        which by returning rows or none.

        Rows mean the change is made and the unit of work is settled: no statement may follow.
        No rows mean nothing changed, and the unit of work goes on as before. Until a
        transaction has begun, the statement is sent alone and is a transaction by itself: one
        round trip where BEGIN, the statement and COMMIT took three, committed when it returns
        (so an error raised after it no longer undoes it, and the `on_commit` callbacks still
        run). Once begun, it runs in the transaction, which commits as usual.
        """
        if self.begun:
            rows = await self.pg_rows(sql, *args)
        else:
            if self._settled:
                raise RuntimeError("no statement may follow the one that made the whole change")
            driver = await self._pg_connection()
            self._database.transactions += 1
            async with _translating():
                rows = await driver.fetch(sql, *args)
        self._settled = bool(rows)
        return rows

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never if it rolls back).

        It runs as soon as the commit returns, before any other await of this unit of work:
        at once when a statement of its own has committed already. A cache that keeps what this
        process committed tells its own notice from a later one by what it heard meanwhile.
        """
        if self.committed_alone:
            callback()
        else:
            self.committed.append(callback)

    def _run_committed(self) -> None:
        callbacks, self.committed = self.committed, []
        for callback in callbacks:
            callback()

    def on_rollback(self, callback: Callable[[], None]) -> None:
        """Run `callback` if the unit of work fails, its commit included."""
        self.rolled_back.append(callback)

    async def pg_begin_with(self, sql: str) -> None:
        """Run a PostgreSQL statement without parameters; when it is the transaction's first, it
        goes with BEGIN in one round trip."""
        if self.begun or self._settled:
            await self.pg_execute(sql)
            return
        if self.dialect != "postgresql":
            raise RuntimeError("PostgreSQL's own statements run on PostgreSQL only")
        await self._begin(sql)


@dataclass(frozen=True, slots=True)
class _PgTransaction:
    """The end of a transaction begun by hand on a driver connection."""

    driver: asyncpg.Connection

    async def commit(self) -> None:
        await self.driver.execute("COMMIT")

    async def rollback(self) -> None:
        await self.driver.execute("ROLLBACK")


def insert_ignoring_conflicts(dialect: Dialect, table: Any) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` in the dialect at hand."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()


# Sent with a worker's claim (`uow.pg_begin_with`): a claim of the oldest due rows must read
# them off its partial index, whatever the statistics say. A backlog that comes before
# PostgreSQL analyzes its table (a new or restored database, rows faster than autovacuum's next
# look) had the planner expect one due row, and so fetch and sort every due row for each claim.
# With sorting priced out, only the index gives the order: the claim costs the same however
# long the backlog.
ORDER_FROM_INDEX = "SET LOCAL enable_sort = off"


# How the read cache's listening connection names itself to PostgreSQL (pg_stat_activity).
LISTENER_NAME = "consentry-cache-listener"


@dataclass
class Database:
    """The database the service talks to: its dialect, its one pool, and the ways in."""

    dialect: Dialect
    timeout: float
    # PostgreSQL: the driver's pool. Through SQLAlchemy each statement cost several times its
    # round trip, and a second pool beside it would split the connections the database allows.
    pool: asyncpg.Pool | None = None
    # SQLite: SQLAlchemy's engine over aiosqlite, whose type handling SQLite needs.
    engine: AsyncEngine | None = None
    # The driver's connection string; it may hold the password, so it stays out of reprs.
    dsn: str = field(default="", repr=False)
    # Turns at the driver pool in arrival order. The pool's own queue lets a newcomer take a
    # connection just released to a waiter, which sends the waiter to the back: under load a
    # few requests waited for hundreds of milliseconds while most waited none.
    # (PostgreSQL's, set by open_database; SQLite lends no driver connections and takes none.)
    turns: Turns = field(default_factory=lambda: Turns(1, 0.0))
    # Transactions begun since start: a request that writes begins exactly one (a statement sent
    # alone counts as one; after one that changed nothing, the request may begin a second).
    transactions: int = 0

    @asynccontextmanager
    async def _pooled(self) -> AsyncIterator[asyncpg.Connection]:
        """A driver connection, first come first served; 503 past the timeout."""
        connection = await self._lend()
        try:
            yield connection
        finally:
            await self._take_back(connection)

    async def _lend(self) -> asyncpg.Connection:
        """A driver connection for `_take_back` to return, first come first served."""
        assert self.pool is not None
        await self._take_turn()
        try:
            # A turn guarantees a connection: there are as many turns as the pool holds.
            async with _translating():
                connection: asyncpg.Connection = await self.pool.acquire()
        except BaseException:
            self.turns.give_back()
            raise
        return connection

    async def _take_back(self, connection: asyncpg.Connection) -> None:
        """Return a connection `_lend` gave, and its turn."""
        assert self.pool is not None
        try:
            await self.pool.release(connection)
        finally:
            self.turns.give_back()

    async def _take_turn(self) -> None:
        """A turn at the driver pool, waiting at most the database timeout for one."""
        try:
            await self.turns.take()
        except NoTurn:
            log.warning("database unavailable: no pooled connection came free in time")
            raise ServiceUnavailable(
                "No database connection came free in time; try again shortly."
            ) from None

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Reader]:
        """A pooled connection without a transaction: one round trip per read."""
        if self.pool is not None:
            async with self._pooled() as driver:
                yield Reader("postgresql", driver=driver)
            return
        assert self.engine is not None
        async with _translating(), self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield Reader("sqlite", connection=autocommit)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """One transaction, committed when the block ends without error, else rolled back."""
        uow = UnitOfWork(self)
        try:
            try:
                yield uow
            except BaseException:
                await uow._end(failed=True)
                raise
            await uow._end(failed=False)
        except BaseException:
            # A statement that committed alone stands whatever failed after it.
            if uow.committed_alone:
                uow._run_committed()
            else:
                for callback in uow.rolled_back:
                    callback()
            raise
        uow._run_committed()

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Reader]:
        """A read-only transaction whose reads all see the same committed state."""
        if self.pool is not None:
            async with self._pooled() as driver:
                transaction = driver.transaction(readonly=True, isolation="repeatable_read")
                async with _translating():
                    await transaction.start()
                try:
                    yield Reader("postgresql", driver=driver)
                finally:
                    with contextlib.suppress(Exception):
                        await transaction.rollback()
            return
        assert self.engine is not None
        async with _translating(), self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            # A deferred transaction by hand: SQLite's WAL keeps this reader's snapshot to the end.
            await autocommit.exec_driver_sql("BEGIN")
            try:
                yield Reader("sqlite", connection=autocommit)
            finally:
                await autocommit.exec_driver_sql("COMMIT")

    @property
    def announces_changes(self) -> bool:
        """Whether committed changes reach other processes (PostgreSQL's LISTEN/NOTIFY)."""
        return self.dialect == "postgresql"

    async def listener(self, name: str = LISTENER_NAME) -> asyncpg.Connection:
        """A connection of its own, outside the pool (PostgreSQL only), to LISTEN on."""
        return await asyncpg.connect(
            self.dsn, timeout=self.timeout, server_settings={"application_name": name}
        )

    def connections(self) -> tuple[int, int]:
        """Pooled connections lent out now, and the most the pool keeps."""
        if self.pool is not None:
            return self.pool.get_size() - self.pool.get_idle_size(), self.pool.get_max_size()
        assert self.engine is not None
        pool: Any = self.engine.pool
        return int(pool.checkedout()), int(pool.size())

    async def dispose(self) -> None:
        """Close every pooled connection; drop them when the database no longer answers."""
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), self.timeout)
            except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
                log.warning("database connections dropped at shutdown (%s)", type(exc).__name__)
                self.pool.terminate()
        if self.engine is not None:
            await self.engine.dispose()


def dialect_of(database_url: str) -> Dialect:
    """The dialect a `CONSENTRY_DATABASE_URL` names; the one place that asks."""
    backend = make_url(database_url).get_backend_name()
    if backend == "postgresql":
        return "postgresql"
    if backend == "sqlite":
        return "sqlite"
    raise ValueError(f"unsupported database {backend!r}: use PostgreSQL or SQLite")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a connection as it is (the pool has already rolled back an open transaction).

    The driver's default reset is a round trip per release (UNLISTEN, RESET ALL, advisory
    unlocks) for session state this service never creates, and it doubled the cost of a read.
    """


async def _json_as_documents(connection: asyncpg.Connection) -> None:
    """JSON columns in: text the caller serialized (once, with orjson); out: decoded documents."""
    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await connection.set_type_codec(
        "jsonb",
        # The binary form of jsonb is a version byte, then the text.
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda data: orjson.loads(data[1:]),
        schema="pg_catalog",
        format="binary",
    )


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
    """The database `CONSENTRY_DATABASE_URL` names, with its pool (connected on first use)."""
    timeout = settings.database_timeout_seconds
    if dialect_of(settings.database_url) == "sqlite":
        engine = create_async_engine(
            settings.database_url,
            pool_recycle=1800,
            hide_parameters=True,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return Database(dialect="sqlite", timeout=timeout, engine=engine)
    dsn = driver_dsn(settings.database_url)
    pool = await asyncpg.create_pool(
        dsn,
        # No connection at startup: the service starts while the database is away and answers
        # 503 until it returns.
        min_size=0,
        max_size=settings.database_pool_size,
        # A database that stopped answering (a partition, a dead peer that sent no reset) costs
        # a request this long, then a 503, rather than the kernel's TCP timeouts.
        timeout=timeout,
        command_timeout=timeout,
        init=_json_as_documents,
        reset=_keep_session,
        max_inactive_connection_lifetime=1800,
    )
    return Database(
        dialect="postgresql",
        timeout=timeout,
        pool=pool,
        dsn=dsn,
        turns=Turns(settings.database_pool_size, timeout),
    )


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


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's one transaction; it commits before the response is sent."""
    async with database_of(request).unit_of_work() as uow:
        yield uow


DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the commit happens when the route returns, before the response goes out,
# so a client never sees a 200 for a change that then failed to commit.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(unit_of_work, scope="function")]
