"""A fresh PostgreSQL database for one run, beside the one the base URL names."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
from sqlalchemy.engine import URL, make_url

from bench.errors import HarnessError

DEFAULT_BASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def asyncpg_dsn(url: URL) -> str:
    """The SQLAlchemy URL as a DSN that asyncpg itself accepts."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def service_url(url: URL) -> str:
    """The URL as `CONSENTRY_DATABASE_URL` takes it."""
    return url.render_as_string(hide_password=False)


def fresh_database_url(base_url: str) -> URL:
    """A URL naming a database that does not exist yet, beside the base one."""
    base = make_url(base_url)
    if not base.drivername.startswith("postgresql"):
        raise HarnessError(f"the benchmark needs PostgreSQL, not {base.drivername}")
    return base.set(database=f"consentry_bench_{secrets.token_hex(6)}")


def create_database(base_url: str, url: URL) -> None:
    """CREATE DATABASE for `url`, through the base database's server."""
    asyncio.run(_administer(base_url, f'CREATE DATABASE "{url.database}"'))


def drop_database(base_url: str, url: URL) -> None:
    """Drop the run's database even while connections to it are still open."""
    asyncio.run(_administer(base_url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


async def _administer(base_url: str, statement: str) -> None:
    try:
        connection = await asyncpg.connect(asyncpg_dsn(make_url(base_url)), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        where = make_url(base_url).render_as_string(hide_password=True)
        raise HarnessError(f"PostgreSQL at {where} cannot be reached: {exc}") from exc
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


_CHANGES = """
SELECT count(*) FROM consent_records
WHERE source = 'preference_center' AND subject_id = ANY($1::text[])
"""


def count_changes(url: URL, subject_ids: list[str]) -> int | None:
    """History records the write load appended for these subjects; None if none can be counted."""
    return asyncio.run(_count_changes(asyncpg_dsn(url), subject_ids))


async def _count_changes(dsn: str, subject_ids: list[str]) -> int | None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        count: int = await connection.fetchval(_CHANGES, subject_ids)
    except asyncpg.UndefinedTableError:
        return None  # the service keeps its history elsewhere now: nothing to check against
    finally:
        await connection.close()
    return count
