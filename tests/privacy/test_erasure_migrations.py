"""Migrations 0005 and 0006 on a database that the earlier defects left behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Executable, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from consentry import migrations
from consentry.audit.models import AuditEntry
from consentry.consent.models import ConsentRecord
from consentry.privacy.models import ErasureRequest

T0 = datetime(2026, 12, 1, tzinfo=UTC)
HASH = "ab" * 32


def _run(url: str, statement: Executable) -> list[dict[str, Any]]:
    """Run one statement in its own transaction; the rows it returns, if any."""

    async def run() -> list[dict[str, Any]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(statement)
                return [dict(row._mapping) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _request(request_id: str, subject: str, status: str, minutes: int) -> dict[str, Any]:
    completed = status == "completed"
    return {
        "id": request_id,
        "subject_id": None if completed or subject == "x" else f"learner-{subject}",
        "subject_hash": subject * 64,
        "status": status,
        "reason": "account_deleted",
        "requested_by": "admin",
        "requested_at": T0 + timedelta(minutes=minutes),
        "due_by": T0 + timedelta(days=30),
        "run_after": T0,
        "attempts": 1 if status in ("failed", "completed") else 0,
        "completed_at": T0 + timedelta(hours=1) if completed else None,
    }


def _record(record_id: str, subject_id: str, retained_until: datetime | None) -> dict[str, Any]:
    return {
        "id": record_id,
        "subject_id": subject_id,
        "seq": 1,
        "recorded_at": T0,
        "categories": {"necessary": True},
        "changed": [],
        "source": "banner",
        "method": "reject_all",
        "actor": "subject",
        "policy_version": "2026-11-01",
        "gpc": False,
        "hash": "c" * 64,
        "prev_hash": None,
        "retained_until": retained_until,
    }


# The race's leftovers (x: one completed, two failed forever), two pending requests of one
# subject (y), a cancelled one beside a pending one (z), and one alone (w).
REQUESTS = [
    _request("x-failed-early", "x", "failed", 0),
    _request("x-completed", "x", "completed", 1),
    _request("x-failed-late", "x", "failed", 2),
    _request("y-first", "y", "pending", 0),
    _request("y-second", "y", "pending", 1),
    _request("z-cancelled", "z", "cancelled", 0),
    _request("z-pending", "z", "pending", 1),
    _request("w-completed", "w", "completed", 0),
]


def _statuses(url: str) -> dict[str, str]:
    rows = _run(url, select(ErasureRequest.id, ErasureRequest.status))
    return {row["id"]: row["status"] for row in rows}


def test_duplicates_are_cancelled_and_kept_history_moves_to_its_own_column(
    empty_database: str,
) -> None:
    migrations.upgrade(empty_database, "0004")
    kept_until = T0 + timedelta(days=90)
    _run(empty_database, insert(ErasureRequest).values(REQUESTS))
    # Written with the columns revision 0004 has: erasure put the hash in `subject_id`.
    _run(empty_database, insert(ConsentRecord).values(_record("kept", HASH, kept_until)))
    _run(empty_database, insert(ConsentRecord).values(_record("named", "learner-live", None)))

    migrations.upgrade(empty_database)

    assert _statuses(empty_database) == {
        "x-failed-early": "cancelled",
        "x-completed": "completed",
        "x-failed-late": "cancelled",
        "y-first": "pending",
        "y-second": "cancelled",
        "z-cancelled": "cancelled",
        "z-pending": "pending",
        "w-completed": "completed",
    }
    audited = _run(
        empty_database,
        select(AuditEntry.target, AuditEntry.actor, AuditEntry.details).where(
            AuditEntry.action == "erasure_cancelled"
        ),
    )
    assert {row["target"]: row["details"]["duplicate_of"] for row in audited} == {
        "x-failed-early": "x-completed",
        "x-failed-late": "x-completed",
        "y-second": "y-first",
    }
    records = _run(
        empty_database,
        select(ConsentRecord.id, ConsentRecord.subject_id, ConsentRecord.subject_hash),
    )
    assert sorted(records, key=lambda row: row["id"]) == [
        {"id": "kept", "subject_id": None, "subject_hash": HASH},
        {"id": "named", "subject_id": "learner-live", "subject_hash": None},
    ]

    migrations.downgrade(empty_database, "0004")
    old_columns = select(ConsentRecord.__table__.c.id, ConsentRecord.__table__.c.subject_id)
    assert {row["id"]: row["subject_id"] for row in _run(empty_database, old_columns)} == {
        "kept": HASH,
        "named": "learner-live",
    }
    # Without the index, the old schema takes a second standing request again.
    _run(empty_database, insert(ErasureRequest).values(_request("y-third", "y", "pending", 2)))
    assert _statuses(empty_database)["y-third"] == "pending"
