"""Erasure rules: requests, cancellation, reading, and the worker's claim, erase, retry.

The systems' part (telling them, their confirmations, the request's end) is in fanout.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from consentry import subject_locks
from consentry.audit import service as audit
from consentry.auth import Caller
from consentry.db import Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import Conflict, Forbidden, NotFound
from consentry.pagination import Cursors
from consentry.privacy import fanout, repository
from consentry.privacy.fanout import EntryView
from consentry.privacy.models import CANCELLED
from consentry.privacy.repository import AWAITING, StoredErasure
from consentry.privacy.schemas import ErasureCreate
from consentry.pseudonyms import Pseudonyms
from consentry.systems import outbox

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


# A request that has ended, one way or the other: it can no longer be overdue.
_ENDED = ("completed", CANCELLED)


def represent(
    request: StoredErasure, systems: list[EntryView] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A request as clients see it, with where each system stands."""

    def moment(value: datetime | None) -> str | None:
        return format_timestamp(value) if value is not None else None

    now = now or utcnow()
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
        "erased_at": moment(request.erased_at),
        # During a grace period: when the erasure starts (until then it can be cancelled).
        "starts_at": moment(request.run_after) if _in_grace(request) else None,
        "overdue": request.status not in _ENDED and now > request.due_by,
        "systems": [fanout.represent_entry(view) for view in systems or []],
    }


async def represented(reader: Reader, requests: list[StoredErasure]) -> list[dict[str, Any]]:
    """Requests as clients see them, their systems read in one go."""
    found = await fanout.views(reader, [request.id for request in requests])
    now = utcnow()
    return [represent(request, found[request.id], now) for request in requests]


def _in_grace(request: StoredErasure) -> bool:
    """Whether the request waits out a grace period (it has not started, and is not due yet)."""
    return (
        request.status == "pending"
        and request.attempts == 0
        and request.run_after > request.requested_at
    )


def _owns(caller: Caller, pseudonyms: Pseudonyms, request: StoredErasure) -> bool:
    """Whether the caller is the request's subject, by keyed hash (also after its erasure)."""
    return (
        caller.kind == "user"
        and caller.subject_id is not None
        and pseudonyms.of(caller.subject_id) == request.subject_hash
    )


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
        erased_at=None,
        overdue_at=None,
    )
    # The database keeps one standing request per subject. An insert that loses the race finds
    # the winner's request on the next read (each statement sees what has committed before it),
    # or, if that one was cancelled in between, inserts after all.
    while not await repository.add_unless_standing(uow, request):
        standing = await repository.find_standing(uow, subject_hash)
        if standing is not None:
            return (await represented(uow, [standing]))[0], False
    if grace_days == 0:
        await repository.announce_due(uow)
    await audit.record(
        uow,
        "erasure_requested",
        caller.name,
        subject_hash=subject_hash,
        target=request.id,
        details={"reason": body.reason, "grace_days": grace_days},
    )
    return represent(request), True


async def cancel(
    uow: UnitOfWork, pseudonyms: Pseudonyms, request_id: str, caller: Caller
) -> dict[str, Any]:
    """Cancel a request that has not started (the account was restored).

    The privacy team may cancel any request; a learner, with its own token, one it made itself.
    """
    request = await repository.get_locked(uow, request_id)
    if request is None:
        raise NotFound("No such erasure request.")
    if not caller.is_admin and not (
        _owns(caller, pseudonyms, request) and request.requested_by == "subject"
    ):
        raise Forbidden("Only the privacy team, or the learner who asked, may cancel this request.")
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


async def read_one(
    reader: Reader, pseudonyms: Pseudonyms, request_id: str, caller: Caller
) -> dict[str, Any]:
    """One request: for the privacy team, or for the learner it is about."""
    request = await repository.get(reader, request_id)
    if request is None:
        raise NotFound("No such erasure request.")
    if not caller.is_admin and not _owns(caller, pseudonyms, request):
        raise Forbidden("This request is about someone else.")
    return (await represented(reader, [request]))[0]


async def read_after(reader: Reader, request_id: str) -> dict[str, Any]:
    """A request as it reads after a change made in this unit of work."""
    request = await repository.get(reader, request_id)
    assert request is not None  # locked by the change
    return (await represented(reader, [request]))[0]


def readable_subject_hash(
    caller: Caller, pseudonyms: Pseudonyms, subject_id: str | None
) -> str | None:
    """The subject a list may show: any (or `subject_id`) for the privacy team, else only the
    caller's own; 403 for a learner naming someone else, or for another kind of caller."""
    if caller.is_admin:
        return pseudonyms.of(subject_id) if subject_id is not None else None
    if caller.kind != "user" or caller.subject_id is None:
        raise Forbidden("This needs the privacy:admin scope, or the learner's own token.")
    if subject_id is not None and subject_id != caller.subject_id:
        raise Forbidden("A learner may list only the requests about itself.")
    return pseudonyms.of(caller.subject_id)


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
    items = await represented(reader, requests[:limit])
    next_cursor = None
    if len(requests) > limit:
        next_cursor = cursors.encode_time(_LIST, items[-1]["requested_at"], items[-1]["id"])
    return {"items": items, "next_cursor": next_cursor}


async def claim(uow: UnitOfWork, now: datetime, limit: int) -> list[StoredErasure]:
    """Take up to `limit` of the longest-due open requests for this worker, for a lease each."""
    return await repository.claim_due(uow, now, limit, now + LEASE)


def by_bucket(claimed: Sequence[StoredErasure], size: int) -> list[list[StoredErasure]]:
    """The claimed requests in groups of at most `size` whose subjects share an erasure lock,
    so that erasing a group together keeps out no more writers than erasing one of them."""
    groups: dict[int | None, list[StoredErasure]] = {}
    for request in claimed:
        key = None if request.subject_id is None else subject_locks.bucket(request.subject_id)
        groups.setdefault(key, []).append(request)
    return [
        group[start : start + size]
        for group in groups.values()
        for start in range(0, len(group), size)
    ]


async def erase(
    uow: UnitOfWork, pseudonyms: Pseudonyms, claimed: Sequence[StoredErasure], now: datetime
) -> int:
    """Erase the claimed requests' subjects in the unit of work: all of it happens, or none of
    it. How many requests it ran."""
    attempts = {request.id: request.attempts for request in claimed}
    locked = await repository.lock_each(uow, list(attempts))
    # Another worker took over after this one's lease ran out: leave those to that one.
    requests = [r for r in locked if r.status == "running" and r.attempts == attempts[r.id]]
    if not requests:
        return 0
    until = now + KEEP_RECORDS_FOR
    # Read before the erasure lock is taken: the lock keeps writers of the subjects out, so
    # everything that does not need it happens before it.
    recipients = await outbox.erasure_recipients(uow)
    # Only an erasure clears the id (of every request of the subject): one without it is about a
    # subject erased already, with nothing left to remove. Done, not failed forever.
    live = [request for request in requests if request.subject_id is not None]
    found = await _erase_with_linked(
        uow, pseudonyms, [request.subject_id for request in live if request.subject_id], now, until
    )
    # What was still to be said about the subjects is moot now, and must not reach a system after
    # their erasure (messages are not ordered): only the erasure's own messages remain, for as
    # long as a system is still to hear them.
    keep = ("erasure.requested",) if recipients else ()
    await outbox.forget_subjects(uow, [request.subject_hash for request in live], keep=keep)
    erased = []
    records = []
    for request in requests:
        details: dict[str, Any] = {"attempt": request.attempts}
        entries: list[repository.StoredEntry] = []
        if request.subject_id is None:
            deleted = dict.fromkeys(repository.ERASED_KINDS, 0)
            details["already_erased"] = True
        else:
            deleted = dict(found[request.subject_id])
            details["linked_subjects"] = deleted.pop("linked_subjects")
            # The other systems hear of it from the outbox, in this same transaction: the
            # erasure and its announcement commit together, or neither does.
            entries = await fanout.fan_out(uow, request, request.subject_id, now, recipients)
        waits = bool(entries)
        erased.append(
            repository.Erased(
                request.id,
                AWAITING if waits else "completed",
                deleted,
                retained_until=until,
                erased_at=now,
                completed_at=None if waits else now,
            )
        )
        if waits:
            details["systems"] = {entry.system_id: entry.mode for entry in entries}
        records.append(
            audit.entry(
                "erasure_awaiting_systems" if waits else "erasure_completed",
                WORKER,
                subject_hash=request.subject_hash,
                target=request.id,
                details={"deleted": deleted, **details},
            )
        )
    await audit.record_all(uow, records)
    await repository.finish(uow, erased)
    return len(requests)


async def _erase_with_linked(
    uow: UnitOfWork, pseudonyms: Pseudonyms, subject_ids: list[str], now: datetime, until: datetime
) -> dict[str, dict[str, int]]:
    """Erase the learners and every anonymous subject linked into them; the counts of each
    learner with its visitors' summed in.

    The learners' erasure locks come first, so no link into them can commit any more; then the
    visitors' own, so none of their writers can either (a deadlock with another erasure taking
    them the other way round rolls this attempt back, and it is retried).
    """
    if not subject_ids:
        return {}
    await repository.lock_subjects_for_erasure(uow, subject_ids)
    linked = await repository.linked_into(uow, subject_ids)
    visitors = [anonymous_id for found in linked.values() for anonymous_id in found]
    await repository.lock_subjects_for_erasure(uow, visitors)
    everyone = subject_ids + visitors
    found = await repository.erase_subjects(
        uow, {subject_id: pseudonyms.of(subject_id) for subject_id in everyone}, now, until
    )
    summed = {}
    for learner in subject_ids:
        counts = dict(found[learner])
        for anonymous_id in linked[learner]:
            counts = {kind: counts[kind] + found[anonymous_id][kind] for kind in counts}
        summed[learner] = {**counts, "linked_subjects": len(linked[learner])}
    return summed


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
