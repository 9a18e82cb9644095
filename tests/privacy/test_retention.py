"""Retention: old analytics become daily counts and go, learner activity stays, old proof goes.

Time is the `now` each pass is given; the CLI, which reads the clock, gets data placed around it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import insert, select

from consentry.consent.models import ConsentRecord
from consentry.events.models import Event, EventAggregate
from consentry.privacy import retention_repository
from consentry.privacy.retention import RetentionReport, run_retention
from tests.cli import Cli

pytestmark = pytest.mark.anyio

NOW = datetime(2027, 3, 10, 15, 30, tzinfo=UTC)
DAYS = 365
CUTOFF = NOW - timedelta(days=DAYS)
US = timedelta(microseconds=1)
PLUS_TWO = timezone(timedelta(hours=2))

# (category, name, occurred_at) of one stored event.
Stored = tuple[str, str, datetime]


async def _store(app: FastAPI, *events: Stored) -> None:
    """Insert events straight into the table, each for a subject of its own."""
    rows = [
        {
            "subject_id": f"u-{uuid.uuid4().hex[:12]}",
            "event_id": str(uuid.uuid4()),
            "category": category,
            "name": name,
            "occurred_at": occurred_at,
            "received_at": occurred_at,
            "properties": {"path": "/courses/1"},
            "context": {},
        }
        for category, name, occurred_at in events
    ]
    async with app.state.database.unit_of_work() as uow:
        await uow.execute_many(insert(Event), rows)


async def _events(app: FastAPI) -> Counter[Stored]:
    """Every stored event as (category, name, occurred_at in UTC)."""
    query = select(Event.category, Event.name, Event.occurred_at)
    async with app.state.database.reader() as reader:
        rows = await reader.all(query)
    return Counter((r["category"], r["name"], r["occurred_at"].astimezone(UTC)) for r in rows)


async def _aggregates(app: FastAPI) -> dict[tuple[date, str, str], int]:
    """Every aggregate row."""
    query = select(EventAggregate.day, EventAggregate.category, EventAggregate.name)
    async with app.state.database.reader() as reader:
        rows = await reader.all(query.add_columns(EventAggregate.count))
    return {(r["day"], r["category"], r["name"]): r["count"] for r in rows}


async def _store_record(app: FastAPI, retained_until: datetime | None) -> str:
    """One consent record (pseudonymised when `retained_until` is set); its id."""
    record_id = str(uuid.uuid4())
    row: dict[str, Any] = {
        "id": record_id,
        # Erasure moves the subject's keyed hash out of `subject_id`.
        "subject_id": None if retained_until else uuid.uuid4().hex,
        "subject_hash": uuid.uuid4().hex * 2 if retained_until else None,
        "seq": 1,
        "recorded_at": NOW - timedelta(days=200),
        "categories": {"necessary": True, "performance": False},
        "changed": ["performance"],
        "source": "banner",
        "method": "reject_all",
        "actor": "subject",
        "policy_version": "2026-11-01",
        "region": "DE",
        "language": "de",
        "gpc": False,
        "user_agent": None,
        "ip": None,
        "hash": "a" * 64,
        "prev_hash": None,
        "retained_until": retained_until,
    }
    async with app.state.database.unit_of_work() as uow:
        await uow.execute(insert(ConsentRecord), row)
    return record_id


async def _records(app: FastAPI) -> set[str]:
    """The ids of every stored consent record."""
    async with app.state.database.reader() as reader:
        return {row["id"] for row in await reader.all(select(ConsentRecord.id))}


async def _snapshot(app: FastAPI) -> tuple[Counter[Stored], dict[Any, int], set[str]]:
    """Everything retention may change."""
    return await _events(app), await _aggregates(app), await _records(app)


async def _run(app: FastAPI, **options: Any) -> RetentionReport:
    """One pass over the app's database, at NOW with the default retention unless told."""
    arguments: dict[str, Any] = {"now": NOW, "retention_days": DAYS, **options}
    return await run_retention(app.state.database, **arguments)


def _at(year: int, month: int, day: int, *time: int) -> datetime:
    return datetime(year, month, day, *time, tzinfo=UTC)


@pytest.mark.parametrize("chunk_events", [1, 2, 10_000])
async def test_old_analytics_become_daily_counts_and_go(app: FastAPI, chunk_events: int) -> None:
    last_moment = _at(2025, 1, 5, 23, 59, 59, 999_999)
    old = [
        ("performance", "page.viewed", last_moment),
        ("performance", "page.viewed", last_moment),
        # 01:00 at UTC+2 is still the 5th in UTC.
        ("performance", "page.viewed", datetime(2025, 1, 6, 1, tzinfo=PLUS_TWO)),
        ("performance", "page.viewed", _at(2025, 1, 6)),
        ("performance", "video.played", _at(2025, 1, 5, 8)),
        ("functional", "settings.saved", _at(2025, 1, 5, 12)),
        *[("customization", "recommendation.shown", _at(2024, 6, 1, 9))] * 3,
    ]
    kept = [
        ("necessary", "lesson.completed", _at(2020, 1, 1)),
        ("performance", "page.viewed", NOW - timedelta(days=10)),
    ]
    await _store(app, *old, *kept)

    report = await _run(app, chunk_events=chunk_events)

    assert await _aggregates(app) == {
        (date(2025, 1, 5), "performance", "page.viewed"): 3,
        (date(2025, 1, 6), "performance", "page.viewed"): 1,
        (date(2025, 1, 5), "performance", "video.played"): 1,
        (date(2025, 1, 5), "functional", "settings.saved"): 1,
        (date(2024, 6, 1), "customization", "recommendation.shown"): 3,
    }
    assert await _events(app) == Counter(kept)
    assert report == RetentionReport(
        events_aggregated=9,
        aggregate_rows=5,
        events_deleted=9,
        records_purged=0,
        cutoff=CUTOFF,
        dry_run=False,
    )


async def test_learner_activity_stays_at_any_age(app: FastAPI) -> None:
    activity = [
        ("necessary", "lesson.completed", _at(1999, 12, 31)),
        ("necessary", "quiz.submitted", CUTOFF - timedelta(days=3000)),
        ("necessary", "lesson.viewed", CUTOFF - US),
    ]
    await _store(app, *activity)

    report = await _run(app)

    assert await _events(app) == Counter(activity)
    assert await _aggregates(app) == {}
    assert (report.events_aggregated, report.aggregate_rows, report.events_deleted) == (0, 0, 0)


async def test_an_event_exactly_at_the_cutoff_stays(app: FastAPI) -> None:
    await _store(
        app,
        ("performance", "page.viewed", CUTOFF - US),
        ("performance", "page.viewed", CUTOFF),
        ("performance", "page.viewed", CUTOFF + US),
    )

    report = await _run(app)

    assert await _events(app) == Counter(
        [("performance", "page.viewed", CUTOFF), ("performance", "page.viewed", CUTOFF + US)]
    )
    assert await _aggregates(app) == {((CUTOFF - US).date(), "performance", "page.viewed"): 1}
    assert report.events_deleted == 1
    assert report.cutoff == CUTOFF


async def test_retention_days_set_the_cutoff(app: FastAPI) -> None:
    await _store(
        app,
        ("performance", "page.viewed", NOW - timedelta(days=31)),
        ("performance", "page.viewed", NOW - timedelta(days=29)),
    )

    report = await _run(app, retention_days=30)

    assert report.cutoff == NOW - timedelta(days=30)
    assert report.events_deleted == 1
    assert await _events(app) == Counter([("performance", "page.viewed", NOW - timedelta(days=29))])


async def test_counts_accumulate_across_passes(app: FastAPI) -> None:
    day = _at(2025, 2, 1, 10)
    await _store(app, *[("performance", "page.viewed", day)] * 2)
    first = await _run(app)

    await _store(
        app,
        *[("performance", "page.viewed", day + timedelta(hours=1))] * 3,
        ("performance", "page.viewed", day + timedelta(days=1)),
    )
    second = await _run(app)

    assert await _aggregates(app) == {
        (date(2025, 2, 1), "performance", "page.viewed"): 5,
        (date(2025, 2, 2), "performance", "page.viewed"): 1,
    }
    assert (first.events_aggregated, first.aggregate_rows) == (2, 1)
    assert (second.events_aggregated, second.aggregate_rows) == (4, 2)
    assert await _events(app) == Counter()


async def test_a_second_pass_at_the_same_time_changes_nothing(app: FastAPI) -> None:
    await _store(
        app,
        *[("performance", "page.viewed", CUTOFF - timedelta(days=d)) for d in range(1, 6)],
        ("necessary", "lesson.completed", CUTOFF - timedelta(days=2)),
        ("functional", "settings.saved", NOW - timedelta(days=1)),
    )
    await _store_record(app, NOW - timedelta(days=1))
    await _store_record(app, NOW + timedelta(days=1))
    first = await _run(app)
    after_first = await _snapshot(app)

    second = await _run(app)

    assert (first.events_deleted, first.records_purged) == (5, 1)
    assert await _snapshot(app) == after_first
    assert second == RetentionReport(
        events_aggregated=0,
        aggregate_rows=0,
        events_deleted=0,
        records_purged=0,
        cutoff=CUTOFF,
        dry_run=False,
    )


async def test_dry_run_changes_nothing_and_predicts_the_real_run(app: FastAPI) -> None:
    await _store(
        app,
        # One group over several chunks of two: it is still one aggregate row.
        *[("performance", "page.viewed", _at(2025, 3, 1, hour)) for hour in range(5)],
        ("performance", "page.viewed", _at(2025, 3, 1, 23, 59, 59, 999_999)),
        ("performance", "page.viewed", _at(2025, 3, 2)),
        ("customization", "recommendation.shown", _at(2025, 3, 1, 12)),
        ("necessary", "lesson.completed", _at(2025, 3, 1, 12)),
        ("performance", "page.viewed", CUTOFF),
    )
    # Counts already there from an earlier pass: the rows are touched again, not new.
    async with app.state.database.unit_of_work() as uow:
        row = {"day": date(2025, 3, 1), "category": "performance", "name": "page.viewed"}
        await uow.execute(insert(EventAggregate), {**row, "count": 7})
    await _store_record(app, NOW - timedelta(seconds=1))
    await _store_record(app, NOW)
    before = await _snapshot(app)

    dry = await _run(app, dry_run=True)

    assert await _snapshot(app) == before
    assert dry == RetentionReport(
        events_aggregated=8,
        aggregate_rows=3,
        events_deleted=8,
        records_purged=1,
        cutoff=CUTOFF,
        dry_run=True,
    )
    real = await _run(app, chunk_events=2)
    assert real == replace(dry, dry_run=False)
    assert (await _aggregates(app))[(date(2025, 3, 1), "performance", "page.viewed")] == 13


async def test_expired_pseudonymised_records_are_purged(app: FastAPI) -> None:
    expired = await _store_record(app, NOW - timedelta(microseconds=1))
    long_expired = await _store_record(app, NOW - timedelta(days=400))
    kept = {
        await _store_record(app, NOW),
        await _store_record(app, NOW + timedelta(days=89)),
        await _store_record(app, None),
    }

    report = await _run(app)

    assert report.records_purged == 2
    assert await _records(app) == kept
    assert expired not in kept and long_expired not in kept


async def test_a_crash_mid_chunk_leaves_both_or_neither(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [("performance", "page.viewed", _at(2025, 4, 1, hour)) for hour in range(4)]
    await _store(app, *old)
    add_counts = retention_repository.add_counts
    calls = 0

    async def crash_in_second_chunk(*args: Any) -> None:
        nonlocal calls
        calls += 1
        await add_counts(*args)
        if calls == 2:
            raise RuntimeError("the process died before commit")

    monkeypatch.setattr(retention_repository, "add_counts", crash_in_second_chunk)
    with pytest.raises(RuntimeError):
        await _run(app, chunk_events=1)

    # The first chunk committed both its count and its delete; the second neither.
    assert await _aggregates(app) == {(date(2025, 4, 1), "performance", "page.viewed"): 1}
    assert await _events(app) == Counter(old[1:])
    monkeypatch.undo()
    rerun = await _run(app, chunk_events=1)
    assert rerun.events_deleted == 3
    assert await _aggregates(app) == {(date(2025, 4, 1), "performance", "page.viewed"): 4}
    assert await _events(app) == Counter()


async def test_concurrent_passes_count_each_event_once(app: FastAPI) -> None:
    old = [
        ("performance", f"page.{n % 3}", CUTOFF - timedelta(days=n % 4, minutes=n + 1))
        for n in range(40)
    ]
    await _store(app, *old)

    reports = await asyncio.gather(*(_run(app, chunk_events=3) for _ in range(3)))

    assert sum(report.events_deleted for report in reports) == 40
    assert sum((await _aggregates(app)).values()) == 40
    assert await _events(app) == Counter()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"now": NOW.replace(tzinfo=None)}, "timezone-aware"),
        ({"retention_days": 0}, "retention_days"),
        ({"chunk_events": 0}, "chunk_events"),
    ],
    ids=["naive-now", "no-retention", "empty-chunks"],
)
async def test_nonsense_arguments_change_nothing(
    app: FastAPI, options: dict[str, Any], message: str
) -> None:
    await _store(app, ("performance", "page.viewed", NOW - timedelta(days=1)))
    before = await _snapshot(app)

    with pytest.raises(ValueError, match=message):
        await _run(app, **options)

    assert await _snapshot(app) == before


def test_the_description_names_every_number() -> None:
    report = RetentionReport(
        events_aggregated=12,
        aggregate_rows=4,
        events_deleted=12,
        records_purged=3,
        cutoff=CUTOFF,
        dry_run=False,
    )
    text = report.describe()
    assert "2026-03-10T15:30:00.000000Z" in text
    assert "rolled 12 analytics events older than the cutoff into 4 daily aggregate rows" in text
    assert "deleted 12 events" in text
    assert "purged 3 pseudonymised consent records" in text
    assert "would" not in text.lower()
    dry_text = replace(report, dry_run=True).describe()
    assert dry_text.startswith("Dry run, nothing changed.")
    assert "would roll 12 analytics events older than the cutoff into 4 daily" in dry_text
    assert "delete 12 events" in dry_text
    assert "would purge 3 pseudonymised consent records" in dry_text
    assert "\n" not in text + dry_text


@pytest.fixture
def cli_env() -> dict[str, str]:
    return {"CONSENTRY_EVENT_RETENTION_DAYS": "30"}


async def test_the_command_reports_then_applies_the_rules(cli: Cli, app: FastAPI) -> None:
    # Placed around the real clock, which the command reads; noon keeps the pair on one day.
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    kept = [
        ("necessary", "lesson.completed", today - timedelta(days=100)),
        ("performance", "page.viewed", today - timedelta(days=10)),
    ]
    await _store(
        app,
        *[("performance", "page.viewed", today - timedelta(days=60))] * 2,
        ("functional", "settings.saved", today - timedelta(days=45)),
        *kept,
    )
    await _store_record(app, datetime.now(UTC) - timedelta(days=1))
    future = await _store_record(app, datetime.now(UTC) + timedelta(days=1))
    before = await _snapshot(app)

    dry = await cli("retention", "run", "--dry-run")

    assert (dry.code, dry.err) == (0, "")
    assert dry.out.startswith("Dry run, nothing changed.")
    assert "would roll 3 analytics events older than the cutoff into 2 daily" in dry.out
    assert "delete 3 events" in dry.out
    assert "would purge 1 pseudonymised" in dry.out
    assert await _snapshot(app) == before

    real = await cli("retention", "run")

    assert (real.code, real.err) == (0, "")
    assert "rolled 3 analytics events older than the cutoff into 2 daily" in real.out
    assert "deleted 3 events" in real.out
    assert "purged 1 pseudonymised" in real.out
    assert await _events(app) == Counter(kept)
    assert sum((await _aggregates(app)).values()) == 3
    assert await _records(app) == {future}


async def test_the_command_needs_its_subcommand(cli: Cli) -> None:
    run = await cli("retention")
    assert run.code == 2
    assert "{run}" in run.err
