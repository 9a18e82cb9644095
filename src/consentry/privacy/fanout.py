"""An erasure across the platform: telling each system, its confirmations, and the end.

When Consentry's own part runs, every system whose `erasure` is not `none` gets an
`erasure.requested` message from the outbox, in the same transaction. The request then waits
(`awaiting_systems`) until each `confirm` system has confirmed and each `notify` system has
taken its message; then it ends, and every stored message body naming the subject is cleared.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from consentry.audit import service as audit
from consentry.auth import CONFIRM_TOKEN_PREFIX
from consentry.db import Database, Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import Forbidden, NotFound
from consentry.privacy import repository
from consentry.privacy.repository import AWAITING, StoredEntry, StoredErasure
from consentry.privacy.schemas import ConfirmationCreate
from consentry.systems import outbox
from consentry.systems.repository import Claim, DeliveryState, Outcome

log = logging.getLogger(__name__)

# 192 random bits after the prefix (the contract asks for at least 128).
_TOKEN_BYTES = 24
CONFIRM_TOKEN_HEADER = "webhook-confirm-token"  # noqa: S105  # a header's name
# A request still waiting this long after Consentry's own part ends, its open entries failed.
ENDS_AFTER = timedelta(days=90)
DONE = ("confirmed", "notified")
_BATCH = 100
WORKER = "worker"
ERASED_MARK = "[erased subject]"


def token_hash(token: str) -> str:
    """The SHA-256 under which a confirm token is kept and found."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class EntryView:
    """A system's entry with the status it reads now."""

    entry: StoredEntry
    status: str


def reads(entry: StoredEntry, state: DeliveryState | None) -> str:
    """What an entry reads now: `failed` while its message is exhausted or the system is
    disabled, deleted, or no longer told of erasures this way; `notified` once a notify
    system took its message."""
    if entry.status != "pending":
        return entry.status
    if state is None or state.status is None or state.system_erasure != entry.mode:
        return "failed"
    if state.status == "exhausted" or state.system_disabled:
        return "failed"
    if entry.mode == "notify" and state.status == "delivered":
        return "notified"
    return "pending"


async def views(reader: Reader, request_ids: Sequence[str]) -> dict[str, list[EntryView]]:
    """Every entry of these requests with what it reads now, by request."""
    stored = await repository.entries(reader, request_ids)
    keys = [
        (e.message_id, e.system_id) for es in stored.values() for e in es if e.status == "pending"
    ]
    states = await outbox.delivery_states(reader, keys)
    return {
        request_id: [EntryView(e, reads(e, states.get((e.message_id, e.system_id)))) for e in es]
        for request_id, es in stored.items()
    }


def represent_entry(view: EntryView) -> dict[str, Any]:
    """An entry as the request shows it."""
    entry = view.entry
    return {
        "id": entry.system_id,
        "mode": entry.mode,
        "status": view.status,
        "confirmed_at": format_timestamp(entry.confirmed_at) if entry.confirmed_at else None,
        "deleted": entry.deleted,
    }


async def fan_out(
    uow: UnitOfWork,
    request: StoredErasure,
    subject_id: str,
    now: datetime,
    recipients: Sequence[tuple[str, str]],
) -> list[StoredEntry]:
    """Tell the systems told of erasures (`recipients`, as outbox.erasure_recipients reads
    them), from the outbox, in the erasure's own transaction."""
    entries = []
    for system_id, mode in recipients:
        data = {
            "request_id": request.id,
            "subject_id": subject_id,
            "due_by": format_timestamp(request.due_by),
            "mode": mode,
        }
        message = outbox.announcement(
            "erasure.requested", data, subject_hash=request.subject_hash, now=now
        )
        await outbox.announce(uow, message, to=[system_id])
        entries.append(
            StoredEntry(request.id, system_id, mode, "pending", message.id, None, None, None, None)
        )
    await repository.add_entries(uow, entries)
    return entries


async def end(
    uow: UnitOfWork,
    request: StoredErasure,
    entries: Sequence[EntryView],
    now: datetime,
    actor: str,
    *,
    timed_out: bool = False,
) -> None:
    """End a request: it reads `completed`, and no stored message body names its subject."""
    if timed_out:
        await repository.fail_open_entries(uow, request.id)
    await repository.set_fields(uow, request.id, {"status": "completed", "completed_at": now})
    cleared = await outbox.forget_subject(uow, request.subject_hash)
    statuses = {
        view.entry.system_id: ("failed" if timed_out and view.status not in DONE else view.status)
        for view in entries
    }
    await audit.record(
        uow,
        "erasure_ended" if timed_out else "erasure_completed",
        actor,
        subject_hash=request.subject_hash,
        target=request.id,
        details={"systems": statuses, "messages_cleared": cleared},
    )
    if timed_out:
        log.error("erasure %s ended after 90 days without every system", request.id)


async def settle(
    uow: UnitOfWork, request: StoredErasure, entries: Sequence[EntryView], now: datetime, actor: str
) -> bool:
    """Keep what notify systems took, and end the request once every system is done; if ended."""
    for view in entries:
        if view.entry.status == "pending" and view.status == "notified":
            await repository.set_entry(
                uow, request.id, view.entry.system_id, {"status": "notified"}
            )
    if request.status == AWAITING and all(view.status in DONE for view in entries):
        await end(uow, request, entries, now, actor)
        return True
    return False


# ---- the delivery worker's hooks ----


async def prepare_attempt(uow: UnitOfWork, claim: Claim) -> dict[str, str]:
    """A fresh confirm token for each attempt of `erasure.requested` to a `confirm` system.

    Its hash commits with the claim, before the attempt is sent, so the system may confirm from
    inside its webhook handler. The token never enters the body the outbox keeps.
    """
    if claim.type != "erasure.requested" or claim.body is None:
        return {}
    data = claim.body["data"]
    if data.get("mode") != "confirm":
        return {}
    token = CONFIRM_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    await repository.add_token(
        uow, token_hash(token), data["request_id"], claim.system_id, utcnow()
    )
    return {CONFIRM_TOKEN_HEADER: token}


async def settle_attempts(uow: UnitOfWork, results: Sequence[tuple[Claim, Outcome]]) -> None:
    """After attempts are recorded: a request whose last notify system took its message ends."""
    request_ids = sorted(
        {
            claim.body["data"]["request_id"]
            for claim, result in results
            if claim.type == "erasure.requested"
            and claim.body is not None
            and result.status == "delivered"
        }
    )
    for request_id in request_ids:
        # A request another transaction holds (a confirmation, the worker's pass) is left to the
        # worker's next pass, which settles every request waiting for systems: waiting for it
        # here, with this transaction's own locks held, could deadlock.
        request = await repository.get_unless_held(uow, request_id)
        if request is None or request.status != AWAITING:
            continue
        found = await views(uow, [request_id])
        await settle(uow, request, found[request_id], result_time(results), WORKER)


def result_time(results: Sequence[tuple[Claim, Outcome]]) -> datetime:
    """When the attempts were recorded."""
    return max(result.attempted_at for _, result in results)


# ---- confirmations ----


async def confirm_by_system(
    uow: UnitOfWork, request_id: str, token: str, body: ConfirmationCreate, now: datetime
) -> StoredErasure:
    """A system confirms with its confirm token; a repeat keeps the first answer. Audited."""
    digest = token_hash(token)
    found = await repository.find_token(uow, digest)
    # Found by its hash; compared again in constant time, like every other secret here.
    if (
        found is None
        or not hmac.compare_digest(found[0], digest)
        or found[1] != request_id
        or found[2] != body.system_id
    ):
        raise Forbidden("This confirm token was not issued for this request and system.")
    request = await repository.get_locked(uow, request_id)
    if request is None:
        raise Forbidden("This confirm token was not issued for this request and system.")
    entries = (await views(uow, [request_id]))[request_id]
    entry = next((view for view in entries if view.entry.system_id == body.system_id), None)
    if entry is None or entry.entry.status != "pending" or request.status != AWAITING:
        return request  # confirmed before, or the request has ended: the first answer stands
    actor = f"system:{body.system_id}"
    await _confirm(uow, request, entry, body, None, actor, now)
    return request


async def confirm_by_hand(
    uow: UnitOfWork, request_id: str, body: ConfirmationCreate, actor: str, now: datetime
) -> StoredErasure:
    """The privacy team records a system's confirmation itself. Audited with its note."""
    request = await repository.get_locked(uow, request_id)
    if request is None:
        raise NotFound("No such erasure request.")
    entries = (await views(uow, [request_id]))[request_id]
    entry = next((view for view in entries if view.entry.system_id == body.system_id), None)
    if entry is None:
        raise NotFound("The request has no entry for that system.")
    if entry.entry.status == "confirmed":
        return request  # the first confirmation stands
    note = await _without_subject(uow, entry.entry, body.note)
    await _confirm(uow, request, entry, body, note, actor, now)
    return request


async def _confirm(
    uow: UnitOfWork,
    request: StoredErasure,
    view: EntryView,
    body: ConfirmationCreate,
    note: str | None,
    actor: str,
    now: datetime,
) -> None:
    system_id = view.entry.system_id
    values = {
        "status": "confirmed",
        "confirmed_at": now,
        "confirmed_by": actor,
        "deleted": body.deleted,
        "note": note,
    }
    await repository.set_entry(uow, request.id, system_id, values)
    details: dict[str, Any] = {"system_id": system_id, "deleted": body.deleted}
    if note is not None:
        details["note"] = note
    await audit.record(
        uow,
        "erasure_confirmed",
        actor,
        subject_hash=request.subject_hash,
        target=request.id,
        details=details,
    )
    if request.status == AWAITING:
        confirmed = EntryView(
            StoredEntry(**{**vars(view.entry), **values}),
            "confirmed",
        )
        entries = (await views(uow, [request.id]))[request.id]
        entries = [confirmed if e.entry.system_id == system_id else e for e in entries]
        await settle(uow, request, entries, now, actor)


async def _without_subject(uow: UnitOfWork, entry: StoredEntry, note: str | None) -> str | None:
    """The note with the subject's id taken out: no copy of it may outlive the request."""
    if note is None:
        return None
    body = await outbox.message_body(uow, entry.message_id)
    subject_id = body["data"].get("subject_id") if body else None
    return note.replace(subject_id, ERASED_MARK) if subject_id else note


# ---- the worker's and the retention pass's part ----


async def advance(database: Database, now: datetime) -> int:
    """End the requests whose systems are all done, and mark newly overdue ones; how many ended."""
    ended = 0
    async with database.unit_of_work() as uow:
        waiting = await repository.lock_awaiting(uow, _BATCH)
        found = await views(uow, [request.id for request in waiting])
        for request in waiting:
            ended += await settle(uow, request, found[request.id], now, WORKER)
    async with database.unit_of_work() as uow:
        overdue = await repository.lock_newly_overdue(uow, now, _BATCH)
        found = await views(uow, [request.id for request in overdue])
        for request in overdue:
            await repository.set_fields(uow, request.id, {"overdue_at": now})
            waiting_for = [v.entry.system_id for v in found[request.id] if v.status not in DONE]
            await audit.record(
                uow,
                "erasure_overdue",
                WORKER,
                subject_hash=request.subject_hash,
                target=request.id,
                details={
                    "status": request.status,
                    "due_by": format_timestamp(request.due_by),
                    "waiting_for": waiting_for,
                },
            )
            log.error("erasure %s is past its due date (%s)", request.id, request.status)
    return ended


async def end_stale(database: Database, now: datetime) -> int:
    """End every request still waiting 90 days after Consentry's own part; how many."""
    ended = 0
    while True:
        async with database.unit_of_work() as uow:
            stale = await repository.lock_stale(uow, now - ENDS_AFTER, _BATCH)
            found = await views(uow, [request.id for request in stale])
            for request in stale:
                await end(uow, request, found[request.id], now, WORKER, timed_out=True)
        ended += len(stale)
        if len(stale) < _BATCH:
            return ended


async def count_stale(reader: Reader, now: datetime) -> int:
    """How many requests end_stale would end now."""
    return await repository.count_stale(reader, now - ENDS_AFTER)
