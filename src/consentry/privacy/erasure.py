"""Erasure rules: requests, cancellation, and the worker's claim, erase, retry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from consentry.audit import service as audit
from consentry.auth import Caller
from consentry.db import Database, format_timestamp
from consentry.errors import Conflict, Forbidden, NotFound
from consentry.pagination import Cursors
from consentry.privacy import repository
from consentry.privacy.models import CANCELLED
from consentry.privacy.schemas import ErasureCreate
from consentry.pseudonyms import Pseudonyms

log = logging.getLogger(__name__)

DUE_IN = timedelta(days=30)
KEEP_RECORDS_FOR = timedelta(days=90)
# A claimed request whose worker vanished is claimed again once this has passed.
LEASE = timedelta(minutes=5)
_FIRST_RETRY = timedelta(seconds=30)
_LAST_RETRY = timedelta(hours=1)
# The list its cursors belong to: one issued for another list is refused here.
_LIST = "erasure_requests"
WORKER = "worker"


def represent(row: Mapping[str, Any]) -> dict[str, Any]:
    """A request (a row's mapping) as clients see it."""

    def moment(value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None

    return {
        "id": row["id"],
        "subject_id": row["subject_id"],
        "status": row["status"],
        "reason": row["reason"],
        "requested_at": format_timestamp(row["requested_at"]),
        "due_by": format_timestamp(row["due_by"]),
        "completed_at": moment(row["completed_at"]),
        "deleted": row["deleted"],
        "retained_until": moment(row["retained_until"]),
    }


async def request_erasure(
    database: Database,
    pseudonyms: Pseudonyms,
    caller: Caller,
    body: ErasureCreate,
    *,
    now: datetime,
    grace_days: int,
) -> tuple[dict[str, Any], bool]:
    """The subject's standing request, or a new one (True), audited with it."""
    if not (caller.is_admin or caller.acts_for(body.subject_id)):
        raise Forbidden("Only the privacy team or the subject itself may ask for its erasure.")
    subject_hash = pseudonyms.of(body.subject_id)
    request_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": request_id,
        "subject_id": body.subject_id,
        "subject_hash": subject_hash,
        "status": "pending",
        "reason": body.reason,
        "requested_by": caller.name,
        "requested_at": now,
        "due_by": now + DUE_IN,
        "run_after": now + timedelta(days=grace_days),
        "attempts": 0,
    }
    async with database.sessions() as session, session.begin():
        # The database keeps one standing request per subject. An insert that loses the race
        # finds the winner's request on the next read (each statement sees what has committed
        # before it), or, if that one was cancelled in between, inserts after all.
        while not await repository.add_unless_standing(session, values):
            standing = await repository.find_standing(session, subject_hash)
            if standing is not None:
                return represent(standing._mapping), False
        await audit.record(
            session,
            "erasure_requested",
            caller.name,
            subject_hash=subject_hash,
            target=request_id,
            details={"reason": body.reason, "grace_days": grace_days},
        )
    return represent(
        {**values, "completed_at": None, "deleted": None, "retained_until": None}
    ), True


async def cancel(database: Database, request_id: str, caller: Caller) -> dict[str, Any]:
    """Cancel a request that has not started (the account was restored)."""
    async with database.sessions() as session, session.begin():
        row = await repository.get(session, request_id, lock=True)
        if row is None:
            raise NotFound("No such erasure request.")
        if row.status == CANCELLED:
            return represent(row._mapping)
        if row.status != "pending" or row.attempts:
            raise Conflict(f"The erasure is {row.status} and can no longer be cancelled.")
        await repository.set_fields(session, request_id, {"status": CANCELLED})
        await audit.record(
            session,
            "erasure_cancelled",
            caller.name,
            subject_hash=row.subject_hash,
            target=request_id,
        )
    return represent({**row._mapping, "status": CANCELLED})


async def read_one(connection: AsyncConnection, request_id: str) -> dict[str, Any]:
    """One request."""
    row = await repository.get(connection, request_id)
    if row is None:
        raise NotFound("No such erasure request.")
    return represent(row._mapping)


async def read_page(
    connection: AsyncConnection,
    *,
    status: str | None,
    subject_hash: str | None,
    limit: int,
    cursor: str | None,
    cursors: Cursors,
) -> dict[str, Any]:
    """A page of requests, newest first."""
    before = cursors.decode_time(_LIST, cursor) if cursor is not None else None
    rows = await repository.page(
        connection, status=status, subject_hash=subject_hash, before=before, limit=limit + 1
    )
    items = [represent(row._mapping) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = cursors.encode_time(_LIST, items[-1]["requested_at"], items[-1]["id"])
    return {"items": items, "next_cursor": next_cursor}


async def run_due(database: Database, pseudonyms: Pseudonyms, clock: Callable[[], datetime]) -> int:
    """Erase every request that is due now; how many completed."""
    completed = 0
    while (claimed := await _claim(database, clock())) is not None:
        request_id, attempt = claimed
        try:
            if await _erase(database, pseudonyms, request_id, attempt, clock()):
                completed += 1
        except Exception as exc:
            await _failed(database, request_id, exc, clock())
    return completed


async def _claim(database: Database, now: datetime) -> tuple[str, int] | None:
    """Take the longest-due open request for this worker, for the length of a lease."""
    async with database.sessions() as session, session.begin():
        row = await repository.claim_due(session, now)
        if row is None:
            return None
        attempt = row.attempts + 1
        await repository.set_fields(
            session,
            row.id,
            {"status": "running", "attempts": attempt, "run_after": now + LEASE},
        )
    return row.id, attempt


async def _erase(
    database: Database, pseudonyms: Pseudonyms, request_id: str, attempt: int, now: datetime
) -> bool:
    """Erase the request's subject in one transaction: all of it happens, or none of it."""
    async with database.sessions() as session, session.begin():
        row = await repository.get(session, request_id, lock=True)
        # Another worker took over after this one's lease ran out: leave it to that one.
        if row is None or row.status != "running" or row.attempts != attempt:
            return False
        until = now + KEEP_RECORDS_FOR
        details: dict[str, Any] = {"attempt": attempt}
        if row.subject_id is None:
            # Only an erasure clears the id (of every request of the subject): the subject is
            # erased already, and there is nothing left to remove. Done, not failed forever.
            deleted = dict.fromkeys(repository.ERASED_KINDS, 0)
            details["already_erased"] = True
        else:
            await repository.lock_subject_for_erasure(session, row.subject_id)
            deleted = await repository.erase_subject(
                session, row.subject_id, pseudonyms.of(row.subject_id), now, until
            )
        await repository.set_fields(
            session,
            request_id,
            {
                "status": "completed",
                "completed_at": now,
                "deleted": deleted,
                "retained_until": until,
                "last_error": None,
            },
        )
        await audit.record(
            session,
            "erasure_completed",
            WORKER,
            subject_hash=row.subject_hash,
            target=request_id,
            details={"deleted": deleted, **details},
        )
    return True


async def _failed(database: Database, request_id: str, exc: Exception, now: datetime) -> None:
    """Record a failed attempt and when to try again; past `due_by`, say so loudly."""
    async with database.sessions() as session, session.begin():
        row = await repository.get(session, request_id, lock=True)
        if row is None or row.status != "running":
            return
        delay = min(_FIRST_RETRY * 2 ** (row.attempts - 1), _LAST_RETRY)
        retry_at = now + delay
        error = type(exc).__name__
        await repository.set_fields(
            session,
            request_id,
            {"status": "failed", "last_error": error[:256], "run_after": retry_at},
        )
        await audit.record(
            session,
            "erasure_failed",
            WORKER,
            subject_hash=row.subject_hash,
            target=request_id,
            details={
                "attempt": row.attempts,
                "error": error,
                "retry_at": format_timestamp(retry_at),
            },
        )
    if retry_at > row.due_by:
        log.error("erasure %s failed again and is past its due date; retrying", request_id)
    else:
        log.warning("erasure %s failed (%s); retrying at %s", request_id, error, retry_at)
