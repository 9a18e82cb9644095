"""`?ssl=` in `CONSENTRY_DATABASE_URL` reaches every connection the service opens to PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from consentry.db import driver_dsn, open_database
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

_USES_TLS = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _with_ssl(url: str, mode: str) -> str:
    return make_url(url).update_query_dict({"ssl": mode}).render_as_string(hide_password=False)


def test_the_engines_ssl_keyword_is_the_drivers_sslmode() -> None:
    url = "postgresql+asyncpg://app:secret@db.internal:5432/consentry?ssl=verify-full&x=1"
    assert (
        driver_dsn(url)
        == "postgresql://app:secret@db.internal:5432/consentry?sslmode=verify-full&x=1"
    )
    assert driver_dsn("postgresql+asyncpg://app@db/consentry") == "postgresql://app@db/consentry"


async def test_every_connection_takes_the_ssl_mode_of_the_url(database_url: str) -> None:
    """The engine, the driver pool of the hot paths and the cache's listener alike."""
    if not database_url.startswith("postgresql"):
        pytest.skip("TLS is PostgreSQL's")
    database = await open_database(make_settings(_with_ssl(database_url, "disable")))
    try:
        async with database.reader() as connection:
            assert await connection.scalar(text(_USES_TLS)) is False
        async with database.driver() as driver:
            assert await driver.fetchval(_USES_TLS) is False
        listener = await database.connect()
        try:
            assert await listener.fetchval(_USES_TLS) is False
        finally:
            await listener.close()
    finally:
        await database.dispose()


async def test_a_required_tls_is_required_of_every_connection(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("TLS is PostgreSQL's")
    probe = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        server_tls = await probe.fetchval("SHOW ssl")
    finally:
        await probe.close()
    if server_tls == "on":
        pytest.skip("this server speaks TLS: refusing it cannot be shown here")
    database = await open_database(make_settings(_with_ssl(database_url, "require")))
    try:
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            async with database.reader() as connection:
                await connection.scalar(text("SELECT 1"))
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            async with database.driver() as driver:
                await driver.fetchval("SELECT 1")
    finally:
        await database.dispose()
