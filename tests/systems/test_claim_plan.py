"""The worker's claim reads the oldest due deliveries off an index, whatever the backlog.

It once sorted every due delivery for each claim of 64 (55 ms of the database's time per claim
under a backlog of 28,000), so a worker behind its writers fell further behind. The plan is
checked as PostgreSQL caches it for a prepared statement (generic, the values unknown), with
sorting and sequential scans priced out: a Sort or a scan of the table means the partial index
cannot serve the claim.
"""

from __future__ import annotations

import asyncpg
import pytest

from consentry.db import driver_dsn
from consentry.systems.repository import _CLAIM

pytestmark = pytest.mark.anyio


async def test_the_claim_reads_due_deliveries_off_the_partial_index(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite plans are not PostgreSQL's")
    connection = await asyncpg.connect(driver_dsn(database_url))
    try:
        await connection.execute(
            "SET plan_cache_mode = force_generic_plan; SET enable_sort = off;"
            " SET enable_seqscan = off"
        )
        await connection.execute(f"PREPARE claim AS {_CLAIM.pg().sql}")
        rows = await connection.fetch("EXPLAIN EXECUTE claim(now(), 64)")
    finally:
        await connection.close()
    plan = "\n".join(row[0] for row in rows)
    assert "ix_webhook_deliveries_due" in plan, plan
    assert "Sort" not in plan, plan
