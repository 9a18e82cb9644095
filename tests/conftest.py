"""Fixtures: every test runs on a migrated SQLite file and on a migrated PostgreSQL database.

Test modules mark themselves `pytestmark = pytest.mark.anyio` to run coroutine tests.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from consentry import migrations
from consentry.app import create_app
from consentry.db import Base
from consentry.settings import Settings
from consentry.shortcuts import DirectRoutes
from tests.helpers import ADMIN_KEY, JWT_SECRET

# The `cli` fixture, for the tests of commands.
pytest_plugins = ["tests.cli"]

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DATABASES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _pg_execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database(base_url: str) -> str:
    """A new, empty PostgreSQL database beside the one `base_url` names; returns its URL."""
    name = f"consentry_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_execute(base_url, f'CREATE DATABASE "{name}"'))
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(base_url: str, url: str) -> None:
    """Drop a database made by create_pg_database."""
    name = make_url(url).database
    asyncio.run(_pg_execute(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_PG_UNREACHABLE = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say loudly, at the end of the run, that the PostgreSQL half did not run."""
    if message := config.stash.get(_PG_UNREACHABLE, None):
        terminalreporter.section("POSTGRESQL NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.line(f"Every PostgreSQL test was skipped. {message}", red=True)


@pytest.fixture(scope="session")
def pg_base_url(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL server under test, or None when it cannot be reached (outside CI)."""
    url = os.environ.get("CONSENTRY_TEST_DATABASE_URL", DEFAULT_PG_URL)
    try:
        asyncio.run(_pg_execute(url, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {exc!r}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: the PostgreSQL leg is required)")
        request.config.stash[_PG_UNREACHABLE] = message
        return None
    return url


@pytest.fixture(scope="session")
def migrated_pg(pg_base_url: str | None) -> Iterator[str | None]:
    """A PostgreSQL database of this test session, migrated to head."""
    if pg_base_url is None:
        yield None
        return
    with migrated_pg_database(pg_base_url) as url:
        yield url


@contextmanager
def migrated_pg_database(base_url: str) -> Iterator[str]:
    """A new PostgreSQL database migrated to head, dropped when the block ends."""
    url = create_pg_database(base_url)
    try:
        migrations.upgrade(url)
        yield url
    finally:
        drop_pg_database(base_url, url)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file of this test session, migrated to head."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "consentry.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrations.upgrade(url)
    return url


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, migrated_sqlite: str) -> str:
    """Each test once per database."""
    if request.param == "sqlite":
        return migrated_sqlite
    url: str | None = request.getfixturevalue("migrated_pg")
    if url is None:
        pytest.skip("PostgreSQL is unreachable (see the summary at the end)")
    return url


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: development mode, a known admin key and JWT secret."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_key": ADMIN_KEY,
        "jwt_secret": JWT_SECRET,
        "env": "development",
        # Tests run the worker themselves, with the clock they choose.
        "run_worker": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


async def _empty_tables(app: FastAPI) -> None:
    async with app.state.database.unit_of_work() as uow:
        for table in reversed(Base.metadata.sorted_tables):
            await uow.execute(delete(table))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running, on empty tables, emptied again afterwards."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await _empty_tables(application)
        try:
            yield application
        finally:
            await _empty_tables(application)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client driving the ASGI app in process."""
    transport = httpx.ASGITransport(app=app, client=("198.51.100.23", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def routed(settings: Settings, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same service without its direct routes (shortcuts.DirectRoutes): every
    request through the router, to compare the answers of both."""
    application = create_app(settings)
    # The middleware stack is built at the first request, from this list.
    application.user_middleware = [
        middleware
        for middleware in application.user_middleware
        if middleware.cls is not DirectRoutes
    ]
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("198.51.100.23", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_base_url: str | None
) -> Iterator[str]:
    """A database with nothing in it."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    if pg_base_url is None:
        pytest.skip("PostgreSQL is unreachable")
    url = create_pg_database(pg_base_url)
    try:
        yield url
    finally:
        drop_pg_database(pg_base_url, url)
