"""The worker's claim reads the oldest due deliveries off an index, whatever the statistics say.

It once sorted every due delivery for each claim of 64, so a worker behind its writers fell
further behind: first because no index could give the order (55 ms per claim under a backlog of
28,000), then, with the index, because the planner had no statistics yet (300 ms per claim under
48,000: it expected one due row, found them through the per-system index and sorted them all).
Here a backlog arrives before PostgreSQL has analyzed the tables, as in a new or restored
database, or when rows come faster than autovacuum's next look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import asyncpg
import pytest

from consentry.db import ORDER_FROM_INDEX, driver_dsn, open_database, utcnow
from consentry.systems.repository import _CLAIM, claim_due
from tests.conftest import make_settings, migrated_pg_database
from tests.plans import plan_of

pytestmark = pytest.mark.anyio

_SYSTEMS = ("crm", "lms")
_DELIVERED = 1_000  # messages delivered to both systems already
_BACKLOG = 8_000  # messages that follow, each due for both systems


@pytest.fixture
def backlog(pg_base_url: str | None) -> Iterator[str]:
    """A database holding a backlog of due deliveries that PostgreSQL has not analyzed yet."""
    if pg_base_url is None:
        pytest.skip("PostgreSQL is unreachable")
    with migrated_pg_database(pg_base_url) as url:
        asyncio.run(_fill(url))
        yield url


async def _fill(url: str) -> None:
    connection = await asyncpg.connect(driver_dsn(url))
    try:
        await connection.execute(
            "INSERT INTO systems (id, name, webhook_url, erasure, secret, created_at,"
            " updated_at) SELECT s, s, 'https://' || s || '.example.edu/hook', 'none',"
            " 'whsec_x', now(), now() FROM unnest($1::text[]) AS s",
            list(_SYSTEMS),
        )
        await _messages(connection, 0, _DELIVERED, "delivered")
        await _messages(connection, _DELIVERED, _DELIVERED + _BACKLOG, "pending")
    finally:
        await connection.close()


async def _messages(connection: asyncpg.Connection, first: int, end: int, status: str) -> None:
    """Messages `first` to `end`, each with a delivery to every system, created a second apart
    in that order and due since."""
    await connection.execute(
        "INSERT INTO outbox_messages (id, type, body, created_at)"
        " SELECT 'msg_' || n, 'consent.changed', '{}'::jsonb,"
        " now() - interval '1 day' + n * interval '1 second' FROM generate_series($1, $2 - 1) n",
        first,
        end,
    )
    await connection.execute(
        "INSERT INTO webhook_deliveries (message_id, system_id, status, attempts, streak,"
        " next_attempt_at, created_at)"
        " SELECT m.id, s.id, $1, 0, 0, m.created_at, m.created_at"
        " FROM outbox_messages m CROSS JOIN systems s"
        " WHERE m.id IN (SELECT 'msg_' || n FROM generate_series($2, $3 - 1) n)",
        status,
        first,
        end,
    )


async def test_without_statistics_the_planner_left_alone_would_sort_the_backlog(
    backlog: str,
) -> None:
    # The hazard the claim guards against: left to its guesses, the plan sorts.
    assert "Sort" in await plan_of(backlog, _CLAIM.pg().sql, "now(), 64")


async def test_the_claim_reads_the_oldest_due_deliveries_off_the_partial_index(
    backlog: str,
) -> None:
    plan = await plan_of(backlog, _CLAIM.pg().sql, "now(), 64", ORDER_FROM_INDEX)
    assert "ix_webhook_deliveries_due" in plan, plan
    assert "Sort" not in plan, plan
    database = await open_database(make_settings(backlog))
    try:
        async with database.unit_of_work() as uow:
            now = utcnow()
            claims = await claim_due(uow, now, 64, now + timedelta(seconds=60))
    finally:
        await database.dispose()
    # The oldest first: messages of the backlog in the order they were created.
    oldest = [f"msg_{_DELIVERED + n // 2}" for n in range(64)]
    assert [claim.message_id for claim in claims] == oldest
