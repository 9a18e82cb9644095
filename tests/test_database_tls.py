"""`?ssl=` in `CONSENTRY_DATABASE_URL` reaches every connection the service opens to PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from consentry.db import dialect_of, driver_dsn, open_database
from consentry.errors import ServiceUnavailable
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
    """The pool and the cache's listener alike."""
    if dialect_of(database_url) != "postgresql":
        pytest.skip("TLS is PostgreSQL's")
    database = await open_database(make_settings(_with_ssl(database_url, "disable")))
    try:
        async with database.reader() as reader:
            assert await reader.scalar(text(_USES_TLS)) is False
        async with database.unit_of_work() as uow:
            assert await uow.scalar(text(_USES_TLS)) is False
        listener = await database.listener()
        try:
            assert await listener.fetchval(_USES_TLS) is False
        finally:
            await listener.close()
    finally:
        await database.dispose()


async def test_a_required_tls_is_required_of_every_connection(database_url: str) -> None:
    if dialect_of(database_url) != "postgresql":
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
        # The seam answers 503 for it; what the driver met is the refused upgrade.
        with pytest.raises(ServiceUnavailable) as refused:
            async with database.reader() as reader:
                await reader.scalar(text("SELECT 1"))
        assert isinstance(refused.value.__context__, ConnectionError)
        assert "rejected SSL upgrade" in str(refused.value.__context__)
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await database.listener()
    finally:
        await database.dispose()
