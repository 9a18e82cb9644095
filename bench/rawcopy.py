"""The ingestion ceiling: the load's event batches written with asyncpg COPY, no HTTP at all.

Each batch is 100 rows in its own transaction, from as many concurrent tasks as wrk has
connections, over a pool as large as the service's: the same shape of database work the service
is asked for, minus parsing, validation, consent gating and HTTP. The service's events/s as a
share of these rows/s is what its own code costs.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from bench.errors import HarnessError
from bench.plan import EVENT_AGE_SECONDS, Plan, batch_templates

TABLE = "bench_raw_events"
_FALLBACK = f"""
CREATE TABLE {TABLE} (
    subject_id text NOT NULL,
    event_id uuid NOT NULL,
    category text NOT NULL,
    name text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    properties jsonb NOT NULL,
    context jsonb NOT NULL,
    PRIMARY KEY (subject_id, event_id)
)
"""
_COLUMNS = """
SELECT column_name, data_type, is_nullable = 'YES' OR column_default IS NOT NULL AS optional
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = $1
ORDER BY ordinal_position
"""
# A value for a required column the harness does not know, by type: it fills the column the
# way a row of that table must, without guessing what the service would store there.
_FILLERS: dict[str, Callable[[datetime], Any]] = {
    "text": lambda now: "",
    "character varying": lambda now: "",
    "integer": lambda now: 0,
    "bigint": lambda now: 0,
    "smallint": lambda now: 0,
    "boolean": lambda now: False,
    "jsonb": lambda now: "{}",
    "json": lambda now: "{}",
    "uuid": lambda now: uuid.uuid4(),
    "timestamp with time zone": lambda now: now,
    "date": lambda now: date.today(),
}


def _event_id(data_type: str) -> Any:
    fresh = uuid.uuid4()
    return fresh if data_type == "uuid" else str(fresh)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


# How each known column of an event row is filled from its template and the batch's times.
_KNOWN: dict[str, Callable[[dict[str, Any], str, datetime, datetime], Any]] = {
    "event_id": lambda t, kind, occurred, now: _event_id(kind),
    "subject_id": lambda t, kind, occurred, now: t["subject_id"],
    "category": lambda t, kind, occurred, now: t["category"],
    "name": lambda t, kind, occurred, now: t["name"],
    "occurred_at": lambda t, kind, occurred, now: occurred,
    "received_at": lambda t, kind, occurred, now: now,
    "properties": lambda t, kind, occurred, now: _json(t["properties"]),
    "context": lambda t, kind, occurred, now: _json(t["context"]),
}


@dataclass
class CopyResult:
    """What the COPY run measured, and how its table was made."""

    rows: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Rows written per second."""
        return self.rows / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """A percentile of the per-batch latency (COPY and commit), in milliseconds."""
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[
            round(share * 100) - 1
        ]


@dataclass(frozen=True)
class Columns:
    """The columns a batch fills, and how each value is made."""

    names: list[str]
    types: dict[str, str]


async def measure(
    dsn: str, plan: Plan, *, tasks: int, pool_size: int, warmup: int, duration: int
) -> CopyResult:
    """Warm up, then COPY batches from `tasks` tasks over `pool_size` connections."""
    result = CopyResult()
    async with asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size) as pool:
        async with pool.acquire() as connection:
            columns = await _create_table(connection, result.notes)
        await _drive(pool, plan, columns, tasks, warmup, CopyResult())
        await _drive(pool, plan, columns, tasks, duration, result)
    return result


async def _create_table(connection: asyncpg.Connection, notes: list[str]) -> Columns:
    """A copy of the service's `events` table (its indexes too), or the fallback shape."""
    if await connection.fetchval("SELECT to_regclass('events') IS NOT NULL"):
        await connection.execute(f"CREATE TABLE {TABLE} (LIKE events INCLUDING ALL)")
        notes.append(f"raw COPY: {TABLE} is LIKE events INCLUDING ALL")
    else:
        await connection.execute(_FALLBACK)
        notes.append(f"raw COPY: no events table yet, so {TABLE} has the fallback shape")
    names, types = [], {}
    for row in await connection.fetch(_COLUMNS, TABLE):
        if row["optional"] and row["column_name"] not in _KNOWN:
            continue
        if row["column_name"] not in _KNOWN and row["data_type"] not in _FILLERS:
            raise HarnessError(f"raw COPY cannot fill {row['column_name']} {row['data_type']}")
        names.append(row["column_name"])
        types[row["column_name"]] = row["data_type"]
    if unknown := [name for name in names if name not in _KNOWN]:
        notes.append(f"raw COPY: filled unknown required columns by type: {', '.join(unknown)}")
    return Columns(names, types)


def _records(plan: Plan, columns: Columns, rng: random.Random) -> list[tuple[Any, ...]]:
    """One batch of rows, in the load's 80/20 mix, with fresh event ids."""
    now = datetime.now(UTC)
    occurred = (now - timedelta(seconds=EVENT_AGE_SECONDS)).replace(microsecond=0)
    return [
        tuple(
            _KNOWN[name](template, columns.types[name], occurred, now)
            if name in _KNOWN
            else _FILLERS[columns.types[name]](now)
            for name in columns.names
        )
        for template in batch_templates(plan, rng)
    ]


async def _drive(
    pool: asyncpg.Pool, plan: Plan, columns: Columns, tasks: int, seconds: int, into: CopyResult
) -> None:
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(
        *(_writer(pool, plan, columns, deadline, into, random.Random(n)) for n in range(tasks))  # noqa: S311
    )
    into.seconds = time.perf_counter() - start


async def _writer(
    pool: asyncpg.Pool,
    plan: Plan,
    columns: Columns,
    deadline: float,
    into: CopyResult,
    rng: random.Random,
) -> None:
    while time.perf_counter() < deadline:
        records = _records(plan, columns, rng)
        began = time.perf_counter()
        async with pool.acquire() as connection, connection.transaction():
            await connection.copy_records_to_table(TABLE, records=records, columns=columns.names)
        into.latencies_ms.append((time.perf_counter() - began) * 1e3)
        into.rows += len(records)
