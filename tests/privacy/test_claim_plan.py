"""The erasure worker's claim reads the longest-due open requests off an index.

With one index on (status, run_after), three open statuses gave no single order: each claim
fetched and sorted every open request (7.6 ms per claim under 30,000, growing with them), so a
bulk of erasures slowed its own drain. Here the requests arrive before PostgreSQL has analyzed
the table, which is when the planner is most easily led to sort.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import asyncpg
import pytest

from consentry.db import ORDER_FROM_INDEX, driver_dsn, open_database, utcnow
from consentry.privacy.repository import _CLAIM_DUE, claim_due
from tests.conftest import make_settings, migrated_pg_database
from tests.plans import plan_of

pytestmark = pytest.mark.anyio

_OPEN = 10_000
# status, lease, attempts added, now, limit
_ARGUMENTS = "'running', now() + interval '1 minute', 1, now(), 8"


@pytest.fixture
def backlog(pg_base_url: str | None) -> Iterator[str]:
    """A database holding open requests, due a second apart, that it has not analyzed yet."""
    if pg_base_url is None:
        pytest.skip("PostgreSQL is unreachable")
    with migrated_pg_database(pg_base_url) as url:
        asyncio.run(_fill(url))
        yield url


async def _fill(url: str) -> None:
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        await connection.execute(
            "INSERT INTO erasure_requests (id, subject_id, subject_hash, status, reason,"
            " requested_by, requested_at, due_by, run_after, attempts)"
            " SELECT 'er-' || n, 'learner-' || n, 'hash-' || n,"
            " (ARRAY['pending', 'failed', 'completed'])[1 + n % 3], 'account_deleted', 'admin',"
            " now(), now() + interval '30 days',"
            " now() - interval '1 day' + n * interval '1 second', 0"
            " FROM generate_series(1, $1) n",
            _OPEN,
        )
    finally:
        await connection.close()


async def test_the_claim_reads_the_longest_due_open_requests_off_the_partial_index(
    backlog: str,
) -> None:
    plan = await plan_of(backlog, _CLAIM_DUE.pg().sql, _ARGUMENTS, ORDER_FROM_INDEX)
    assert "ix_erasure_requests_due" in plan, plan
    assert "Sort" not in plan, plan
    database = await open_database(make_settings(backlog))
    try:
        async with database.unit_of_work() as uow:
            now = utcnow()
            claimed = await claim_due(uow, now, 8, now + timedelta(minutes=1))
    finally:
        await database.dispose()
    # The longest due, completed ones (every third, from n = 2) never.
    assert {found.id for found in claimed} == {f"er-{n}" for n in (1, 3, 4, 6, 7, 9, 10, 12)}
    assert {found.status for found in claimed} == {"running"}
