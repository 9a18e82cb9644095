"""Erasure rules: requests, cancellation, and the worker's claim, erase, retry."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from consentry.audit import service as audit
from consentry.auth import Caller
from consentry.db import Reader, UnitOfWork, format_timestamp
from consentry.errors import Conflict, Forbidden, NotFound
from consentry.pagination import Cursors
from consentry.privacy import repository
from consentry.privacy.models import CANCELLED
from consentry.privacy.repository import StoredErasure
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


def represent(request: StoredErasure) -> dict[str, Any]:
    """A request as clients see it."""

    def moment(value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None

    return {
        "id": request.id,
        "subject_id": request.subject_id,
        "status": request.status,
        "reason": request.reason,
        "requested_at": format_timestamp(request.requested_at),
        "due_by": format_timestamp(request.due_by),
        "completed_at": moment(request.completed_at),
        "deleted": request.deleted,
        "retained_until": moment(request.retained_until),
    }


async def request_erasure(
    uow: UnitOfWork,
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
    request = StoredErasure(
        id=str(uuid.uuid4()),
        subject_id=body.subject_id,
        subject_hash=subject_hash,
        status="pending",
        reason=body.reason,
        requested_by=caller.name,
        requested_at=now,
        due_by=now + DUE_IN,
        run_after=now + timedelta(days=grace_days),
        attempts=0,
        last_error=None,
        completed_at=None,
        deleted=None,
        retained_until=None,
    )
    # The database keeps one standing request per subject. An insert that loses the race finds
    # the winner's request on the next read (each statement sees what has committed before it),
    # or, if that one was cancelled in between, inserts after all.
    while not await repository.add_unless_standing(uow, request):
        standing = await repository.find_standing(uow, subject_hash)
        if standing is not None:
            return represent(standing), False
    await audit.record(
        uow,
        "erasure_requested",
        caller.name,
        subject_hash=subject_hash,
        target=request.id,
        details={"reason": body.reason, "grace_days": grace_days},
    )
    return represent(request), True


async def cancel(uow: UnitOfWork, request_id: str, caller: Caller) -> dict[str, Any]:
    """Cancel a request that has not started (the account was restored)."""
    request = await repository.get_locked(uow, request_id)
    if request is None:
        raise NotFound("No such erasure request.")
    if request.status == CANCELLED:
        return represent(request)
    if request.status != "pending" or request.attempts:
        raise Conflict(f"The erasure is {request.status} and can no longer be cancelled.")
    await repository.set_fields(uow, request_id, {"status": CANCELLED})
    await audit.record(
        uow,
        "erasure_cancelled",
        caller.name,
        subject_hash=request.subject_hash,
        target=request_id,
    )
    return represent(replace(request, status=CANCELLED))


async def read_one(reader: Reader, request_id: str) -> dict[str, Any]:
    """One request."""
    request = await repository.get(reader, request_id)
    if request is None:
        raise NotFound("No such erasure request.")
    return represent(request)


async def read_page(
    reader: Reader,
    *,
    status: str | None,
    subject_hash: str | None,
    limit: int,
    cursor: str | None,
    cursors: Cursors,
) -> dict[str, Any]:
    """A page of requests, newest first."""
    before = cursors.decode_time(_LIST, cursor) if cursor is not None else None
    requests = await repository.page(
        reader, status=status, subject_hash=subject_hash, before=before, limit=limit + 1
    )
    items = [represent(request) for request in requests[:limit]]
    next_cursor = None
    if len(requests) > limit:
        next_cursor = cursors.encode_time(_LIST, items[-1]["requested_at"], items[-1]["id"])
    return {"items": items, "next_cursor": next_cursor}


async def claim(uow: UnitOfWork, now: datetime) -> tuple[str, int] | None:
    """Take the longest-due open request for this worker, for the length of a lease."""
    request = await repository.claim_due(uow, now)
    if request is None:
        return None
    attempt = request.attempts + 1
    await repository.set_fields(
        uow, request.id, {"status": "running", "attempts": attempt, "run_after": now + LEASE}
    )
    return request.id, attempt


async def erase(
    uow: UnitOfWork, pseudonyms: Pseudonyms, request_id: str, attempt: int, now: datetime
) -> bool:
    """Erase the request's subject in the unit of work: all of it happens, or none of it."""
    request = await repository.get_locked(uow, request_id)
    # Another worker took over after this one's lease ran out: leave it to that one.
    if request is None or request.status != "running" or request.attempts != attempt:
        return False
    until = now + KEEP_RECORDS_FOR
    details: dict[str, Any] = {"attempt": attempt}
    if request.subject_id is None:
        # Only an erasure clears the id (of every request of the subject): the subject is
        # erased already, and there is nothing left to remove. Done, not failed forever.
        deleted = dict.fromkeys(repository.ERASED_KINDS, 0)
        details["already_erased"] = True
    else:
        deleted = await _erase_with_linked(uow, pseudonyms, request.subject_id, now, until)
        details["linked_subjects"] = deleted.pop("linked_subjects")
    await repository.set_fields(
        uow,
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
        uow,
        "erasure_completed",
        WORKER,
        subject_hash=request.subject_hash,
        target=request_id,
        details={"deleted": deleted, **details},
    )
    return True


async def _erase_with_linked(
    uow: UnitOfWork, pseudonyms: Pseudonyms, subject_id: str, now: datetime, until: datetime
) -> dict[str, int]:
    """Erase the subject and every anonymous subject linked into it; the counts summed.

    The learner's erasure lock comes first, so no link into it can commit any more; then the
    visitors' own, so none of their writers can either (a deadlock with another erasure taking
    them the other way round rolls this attempt back, and it is retried).
    """
    await repository.lock_subject_for_erasure(uow, subject_id)
    linked = await repository.linked_into(uow, subject_id)
    deleted = await repository.erase_subject(uow, subject_id, pseudonyms.of(subject_id), now, until)
    for anonymous_id in linked:
        await repository.lock_subject_for_erasure(uow, anonymous_id)
        found = await repository.erase_subject(
            uow, anonymous_id, pseudonyms.of(anonymous_id), now, until
        )
        deleted = {kind: deleted[kind] + found[kind] for kind in deleted}
    return {**deleted, "linked_subjects": len(linked)}


async def record_failure(uow: UnitOfWork, request_id: str, exc: Exception, now: datetime) -> None:
    """Record a failed attempt and when to try again; past `due_by`, say so loudly."""
    request = await repository.get_locked(uow, request_id)
    if request is None or request.status != "running":
        return
    delay = min(_FIRST_RETRY * 2 ** (request.attempts - 1), _LAST_RETRY)
    retry_at = now + delay
    error = type(exc).__name__
    await repository.set_fields(
        uow, request_id, {"status": "failed", "last_error": error[:256], "run_after": retry_at}
    )
    await audit.record(
        uow,
        "erasure_failed",
        WORKER,
        subject_hash=request.subject_hash,
        target=request_id,
        details={
            "attempt": request.attempts,
            "error": error,
            "retry_at": format_timestamp(retry_at),
        },
    )
    if retry_at > request.due_by:
        log.error("erasure %s failed again and is past its due date; retrying", request_id)
    else:
        log.warning("erasure %s failed (%s); retrying at %s", request_id, error, retry_at)
