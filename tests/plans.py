"""What PostgreSQL plans for a statement as the driver prepares it, for the tests of claims."""

from __future__ import annotations

import asyncpg

from consentry.db import driver_dsn


async def plan_of(url: str, sql: str, arguments: str, settings: str = "") -> str:
    """EXPLAIN of `sql` prepared and run with `arguments` (SQL text), `settings` in force."""
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        async with connection.transaction():
            if settings:
                await connection.execute(settings)
            await connection.execute(f"PREPARE claim AS {sql}")
            rows = await connection.fetch(f"EXPLAIN EXECUTE claim({arguments})")
    finally:
        await connection.close()
    return "\n".join(row[0] for row in rows)
