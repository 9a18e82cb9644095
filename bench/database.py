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


def checkpoint(url: URL) -> bool:
    """Write every dirty page out now; False if this role may not (CHECKPOINT needs pg_checkpoint).

    PostgreSQL's timed checkpoint (every `checkpoint_timeout`, counted from the forced one of
    CREATE DATABASE) would otherwise land on whichever rows run five minutes in, and make them
    pay for the pages earlier rows dirtied. One before each row starts them all alike.
    """
    try:
        asyncio.run(_administer(service_url(url), "CHECKPOINT"))
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


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


_GRANTS = """
SELECT subject_id, (categories -> 'performance' ->> 'granted')::boolean AS granted
FROM consent_states WHERE subject_id = ANY($1::text[])
"""


def current_grants(url: URL, subject_ids: list[str]) -> dict[str, bool]:
    """Whether each subject's `performance` is granted now, as the write load left it."""
    return asyncio.run(_current_grants(asyncpg_dsn(url), subject_ids))


async def _current_grants(dsn: str, subject_ids: list[str]) -> dict[str, bool]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await connection.fetch(_GRANTS, subject_ids)
    finally:
        await connection.close()
    return {row["subject_id"]: bool(row["granted"]) for row in rows}


_DELIVERIES = """
SELECT count(*) FILTER (WHERE status <> 'delivered') AS waiting,
       count(*) FILTER (WHERE status = 'delivered') AS delivered,
       min(delivered_at) AS first, max(delivered_at) AS last
FROM webhook_deliveries
"""


def deliveries(url: URL) -> tuple[int, int, float | None]:
    """Webhook deliveries waiting and delivered, and the seconds from first to last delivered."""
    return asyncio.run(_deliveries(asyncpg_dsn(url)))


async def _deliveries(dsn: str) -> tuple[int, int, float | None]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        row = await connection.fetchrow(_DELIVERIES)
    finally:
        await connection.close()
    span = (row["last"] - row["first"]).total_seconds() if row["first"] is not None else None
    return int(row["waiting"]), int(row["delivered"]), span
