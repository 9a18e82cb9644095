"""(d) erasure: requests created under load, and how soon the worker completes them.

The privacy team's key asks for the erasure of seeded subjects that hold consent history,
connections and events, from a few connections (an account service deleting accounts), while a
`consentry worker` erases them. Completion is read from the requests' own timestamps.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import URL

from bench.database import asyncpg_dsn
from bench.errors import HarnessError
from bench.plan import EVENT_AGE_SECONDS, Plan, Subject

CONNECTIONS = 4
# The latency target: an erasure is complete within this long of its creation (p99).
LATENCY_TARGET = timedelta(seconds=2)
# Completed per second, as a share of created per second: the worker keeps up.
KEEP_UP_TARGET = 1.0
# One in this many of the subjects is erased by the warm-up, the rest by the measured run.
WARMUP_SHARE = 5
EVENTS_PER_SUBJECT = 2
EVENTS_PER_BATCH = 100
# How long the worker may take to finish what the load created before the row fails.
COMPLETION_TIMEOUT_SECONDS = 300


def subjects(plan: Plan) -> tuple[list[Subject], list[Subject]]:
    """(warm-up, measured): every subject with a consent history, in a fixed order."""
    recorded = plan.recorded
    cut = len(recorded) // WARMUP_SHARE
    return recorded[:cut], recorded[cut:]


def write_subjects(path: Path, chosen: Sequence[Subject]) -> Path:
    """The subject list the Lua script reads."""
    path.write_text("".join(f"{subject.id}\n" for subject in chosen))
    return path


async def seed_events(base_url: str, events_key: str, chosen: Sequence[Subject]) -> None:
    """Give every subject `necessary` events (always accepted), so each erasure removes some."""
    stamp = (datetime.now(UTC) - timedelta(seconds=EVENT_AGE_SECONDS)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    events: list[dict[str, object]] = [
        {
            "event_id": str(uuid.uuid4()),
            "subject_id": subject.id,
            "category": "necessary",
            "name": "lesson.completed",
            "occurred_at": stamp,
            "properties": {"course_id": "bio-101"},
            "context": {"app": "web"},
        }
        for subject in chosen
        for _ in range(EVENTS_PER_SUBJECT)
    ]
    batches = [events[i : i + EVENTS_PER_BATCH] for i in range(0, len(events), EVENTS_PER_BATCH)]
    headers = {"Authorization": f"Bearer {events_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:

        async def post(batch: list[dict[str, object]]) -> None:
            response = await client.post("/v1/events", json={"events": batch})
            if response.status_code != 200 or response.json()["accepted"] != len(batch):
                raise HarnessError(
                    f"seeding events answered {response.status_code}: {response.text[:300]}"
                )

        for start in range(0, len(batches), CONNECTIONS):
            await asyncio.gather(*(post(b) for b in batches[start : start + CONNECTIONS]))


@dataclass(frozen=True)
class Completion:
    """The run's requests as the database holds them once the worker is done with them."""

    created: int
    completed_in_time: int
    unfinished: int
    p50_ms: float | None
    p99_ms: float | None


_LATEST = "SELECT max(requested_at) FROM erasure_requests"
_UNFINISHED = "SELECT count(*) FROM erasure_requests WHERE status NOT IN ('completed', 'cancelled')"
_REQUESTS = """
SELECT requested_at, completed_at FROM erasure_requests
WHERE $1::timestamptz IS NULL OR requested_at > $1::timestamptz
"""


def latest_request(url: URL) -> datetime | None:
    """When the newest request was created: the measured run's requests come after it."""
    latest: datetime | None = asyncio.run(_fetchval(url, _LATEST))
    return latest


def unfinished(url: URL) -> int:
    """Requests the worker has not completed yet."""
    return int(asyncio.run(_fetchval(url, _UNFINISHED)))


async def _fetchval(url: URL, sql: str) -> Any:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def completion(url: URL, after: datetime | None) -> Completion:
    """Creation → completion of every request created after `after`."""
    return asyncio.run(_completion(url, after))


async def _completion(url: URL, after: datetime | None) -> Completion:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        rows = await connection.fetch(_REQUESTS, after)
    finally:
        await connection.close()
    if not rows:
        return Completion(0, 0, 0, None, None)
    last_created = max(row["requested_at"] for row in rows)
    done = [row for row in rows if row["completed_at"] is not None]
    waits = sorted((row["completed_at"] - row["requested_at"]).total_seconds() for row in done)
    in_time = sum(row["completed_at"] <= last_created + LATENCY_TARGET for row in done)
    return Completion(
        created=len(rows),
        completed_in_time=in_time,
        unfinished=len(rows) - len(done),
        p50_ms=_percentile(waits, 0.50),
        p99_ms=_percentile(waits, 0.99),
    )


def _percentile(ordered: list[float], share: float) -> float | None:
    """Nearest rank, in milliseconds."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] * 1000


def wait_until_finished(url: URL, alive: Callable[[], bool], timeout: float) -> int:
    """Wait until the worker has completed every request; how many remain when it gives up."""
    deadline = time.monotonic() + timeout
    while (left := unfinished(url)) > 0:
        if not alive() or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
    return 0


def asked(work: Path) -> list[str]:
    """The subjects whose erasure the load created (erasure.lua writes them, one file a thread)."""
    return [
        line
        for path in sorted(work.glob("erasure_asked.*"))
        for line in path.read_text().splitlines()
        if line
    ]


_SUBJECT_COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND column_name IN ('subject_id', 'linked_to')
ORDER BY table_name, column_name
"""


def leftovers(url: URL, subject_ids: list[str]) -> dict[str, int]:
    """Rows that still name an erased subject, by `table.column`: none may."""
    return asyncio.run(_leftovers(url, subject_ids))


async def _leftovers(url: URL, subject_ids: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        found = {}
        for row in await connection.fetch(_SUBJECT_COLUMNS):
            table, column = row["table_name"], row["column_name"]
            count = await connection.fetchval(
                f'SELECT count(*) FROM "{table}" WHERE "{column}" = ANY($1::text[])',  # noqa: S608 -- names from the catalogue
                subject_ids,
            )
            if count:
                found[f"{table}.{column}"] = int(count)
        return found
    finally:
        await connection.close()
