"""Registry rules: audited changes to the platform systems, their secrets, their deliveries."""

from __future__ import annotations

import re
from dataclasses import replace as replaced
from datetime import datetime, timedelta
from typing import Any

from consentry.audit import service as audit
from consentry.db import Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import Conflict, NotFound, ValidationFailed
from consentry.pagination import Cursors, invalid_cursor
from consentry.systems import outbox, repository, urls
from consentry.systems.repository import StoredDelivery, StoredSystem
from consentry.systems.schemas import (
    MESSAGE_ID_PATTERN,
    SystemCreate,
    SystemFields,
    SystemReplace,
    is_system_id,
)
from consentry.systems.signing import new_secret

# How long the secret before a rotation keeps signing beside the new one.
ROTATION_OVERLAP = timedelta(hours=24)
_SYSTEMS = "systems"
_DELIVERIES = "webhook_deliveries"
_EDITABLE = ("name", "webhook_url", "events", "erasure")
RETRYABLE = ("failed", "exhausted")
_MESSAGE_ID = re.compile(MESSAGE_ID_PATTERN)


def _moment(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


def represent(stored: StoredSystem, now: datetime | None = None) -> dict[str, Any]:
    """A stored system as the API shows it, without its secrets."""
    now = now or utcnow()
    overlap = stored.previous_secret_until
    return {
        "id": stored.id,
        "name": stored.name,
        "webhook_url": stored.webhook_url,
        "events": list(stored.events),
        "erasure": stored.erasure,
        "disabled": stored.disabled_at is not None,
        "disabled_at": _moment(stored.disabled_at),
        "previous_secret_expires_at": _moment(overlap) if overlap and overlap > now else None,
        "created_at": format_timestamp(stored.created_at),
        "updated_at": format_timestamp(stored.updated_at),
    }


def signing_secrets(
    secret: str, previous: str | None, previous_until: datetime | None, now: datetime
) -> list[str]:
    """The secrets that sign an attempt now: the current one, and the one before for 24 h."""
    if previous is not None and previous_until is not None and previous_until > now:
        return [secret, previous]
    return [secret]


def _described(system: StoredSystem | SystemFields) -> dict[str, Any]:
    """What the audit log keeps of a system: every editable field (never a secret)."""
    return {field: _plain(getattr(system, field)) for field in _EDITABLE}


def _plain(value: Any) -> Any:
    return sorted(value) if isinstance(value, list | tuple) else value


async def check_url(url: str, allow: urls.AllowList) -> None:
    """422 for a webhook URL the rules do not allow (resolved and judged now)."""
    try:
        await urls.check_registration(url, allow)
    except urls.Refused as refused:
        raise ValidationFailed(
            f"The webhook URL {refused}.",
            errors=[{"loc": ["body", "webhook_url"], "msg": str(refused), "type": "value_error"}],
        ) from None


def _after(cursor: str | None, cursors: Cursors) -> str | None:
    if cursor is None:
        return None
    after: str = cursors.decode(_SYSTEMS, cursor, {"after": str})["after"]
    if not is_system_id(after):
        raise invalid_cursor()
    return after


async def read_page(
    reader: Reader, *, limit: int, cursor: str | None, cursors: Cursors
) -> dict[str, Any]:
    """A page of systems ordered by id."""
    rows = await repository.page(reader, after=_after(cursor, cursors), limit=limit + 1)
    now = utcnow()
    items = [represent(row, now) for row in rows[:limit]]
    next_cursor = (
        cursors.encode(_SYSTEMS, {"after": items[-1]["id"]}) if len(rows) > limit else None
    )
    return {"items": items, "next_cursor": next_cursor}


async def read_one(reader: Reader, system_id: str) -> dict[str, Any]:
    """One system; NotFound when none has that id."""
    stored = await repository.get(reader, system_id)
    if stored is None:
        raise NotFound("No system has that id.")
    return represent(stored)


async def create(
    uow: UnitOfWork, body: SystemCreate, actor: str, allow: urls.AllowList
) -> dict[str, Any]:
    """Register a system with a fresh secret, audited; Conflict when the id is taken."""
    # Before the first statement: the lookup holds no connection and no lock.
    await check_url(body.webhook_url, allow)
    created = await _insert(uow, body.id, body, actor)
    if created is None:
        raise Conflict(f"A system with id {body.id!r} exists already.")
    return created


async def replace(
    uow: UnitOfWork, system_id: str, body: SystemReplace, actor: str, allow: urls.AllowList
) -> tuple[dict[str, Any], bool]:
    """Replace a system's description (re-enabling it), or register it; and whether it was new."""
    if body.id is not None and body.id != system_id:
        raise ValidationFailed(
            "The body's id differs from the id in the path.",
            errors=[
                {"loc": ["body", "id"], "msg": "must be the id in the path", "type": "value_error"}
            ],
        )
    await check_url(body.webhook_url, allow)
    while (current := await repository.lock(uow, system_id)) is None:
        if (created := await _insert(uow, system_id, body, actor)) is not None:
            return created, True
    return await _change(uow, current, body, actor), False


async def delete(uow: UnitOfWork, system_id: str, actor: str) -> None:
    """Remove a system with its undelivered messages, audited; NotFound when there is none."""
    current = await repository.lock(uow, system_id)
    if current is None:
        raise NotFound("No system has that id.")
    await repository.remove(uow, system_id)
    await audit.record(
        uow, "system_deleted", actor, target=system_id, details={"before": _described(current)}
    )


async def rotate_secret(uow: UnitOfWork, system_id: str, actor: str) -> dict[str, Any]:
    """A new secret, shown once; the one it replaces signs beside it for 24 hours. Audited."""
    current = await repository.lock(uow, system_id)
    if current is None:
        raise NotFound("No system has that id.")
    now = utcnow()
    secret = new_secret()
    values: dict[str, Any] = {
        "secret": secret,
        "previous_secret": current.secret,
        "previous_secret_until": now + ROTATION_OVERLAP,
        "updated_at": now,
    }
    await repository.update_fields(uow, system_id, values)
    await audit.record(
        uow,
        "system_secret_rotated",
        actor,
        target=system_id,
        details={"previous_secret_until": format_timestamp(now + ROTATION_OVERLAP)},
    )
    rotated = replaced(current, **values)
    return {**represent(rotated, now), "secret": secret}


async def _insert(
    uow: UnitOfWork, system_id: str, body: SystemFields, actor: str
) -> dict[str, Any] | None:
    """Insert the system and its audit row; None, writing nothing, when the id is taken."""
    now = utcnow()
    secret = new_secret()
    stored = StoredSystem(
        id=system_id,
        name=body.name,
        webhook_url=body.webhook_url,
        erasure=body.erasure,
        secret=secret,
        previous_secret=None,
        previous_secret_until=None,
        disabled_at=None,
        created_at=now,
        updated_at=now,
        events=tuple(sorted(body.events)),
    )
    if not await repository.insert(uow, stored):
        return None
    details = {"after": _described(stored)}
    await audit.record(uow, "system_created", actor, target=system_id, details=details)
    return {**represent(stored, now), "secret": secret}


async def _change(
    uow: UnitOfWork, current: StoredSystem, body: SystemFields, actor: str
) -> dict[str, Any]:
    """Write what differs, re-enable a disabled system, and audit both."""
    wanted = _described(body)
    before = _described(current)
    changed = [field for field in _EDITABLE if before[field] != wanted[field]]
    enabling = current.disabled_at is not None
    if not changed and not enabling:
        return represent(current)
    now = utcnow()
    values: dict[str, Any] = {f: getattr(body, f) for f in changed if f != "events"}
    await repository.update_fields(
        uow, current.id, {**values, "disabled_at": None, "updated_at": now}
    )
    if "events" in changed:
        await repository.set_events(uow, current.id, body.events)
    details: dict[str, Any] = {
        "before": {f: before[f] for f in changed},
        "after": {f: wanted[f] for f in changed},
    }
    if enabling:
        details["enabled"] = True
    await audit.record(uow, "system_changed", actor, target=current.id, details=details)
    events = tuple(sorted(body.events)) if "events" in changed else current.events
    updated = replaced(current, **values, events=events, disabled_at=None, updated_at=now)
    return represent(updated, now)


# ---- deliveries ----


def represent_delivery(delivery: StoredDelivery) -> dict[str, Any]:
    """A delivery as the API shows it: where it stands, never the message's body."""
    return {
        "message_id": delivery.message_id,
        "type": delivery.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_attempt_at": _moment(delivery.last_attempt_at),
        "next_attempt_at": _moment(delivery.next_attempt_at)
        if delivery.status
        in (
            "pending",
            "failed",
        )
        else None,
        "delivered_at": _moment(delivery.delivered_at),
        "created_at": format_timestamp(delivery.created_at),
        "retryable": delivery.sendable and delivery.status in RETRYABLE,
    }


async def read_deliveries(
    reader: Reader,
    system_id: str,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
    cursors: Cursors,
) -> dict[str, Any]:
    """A page of a system's deliveries, newest first; NotFound for an unknown system."""
    if await repository.get(reader, system_id) is None:
        raise NotFound("No system has that id.")
    before = cursors.decode_time(_DELIVERIES, cursor) if cursor is not None else None
    if before is not None and not _is_message_id(before[1]):
        raise invalid_cursor()
    rows = await repository.deliveries(
        reader, system_id, status=status, before=before, limit=limit + 1
    )
    items = [represent_delivery(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = cursors.encode_time(
            _DELIVERIES, items[-1]["created_at"], items[-1]["message_id"]
        )
    return {"items": items, "next_cursor": next_cursor}


def _is_message_id(value: str) -> bool:
    return _MESSAGE_ID.fullmatch(value) is not None


async def retry(uow: UnitOfWork, system_id: str, message_id: str, actor: str) -> dict[str, Any]:
    """Send a failed or exhausted message again now, with the whole schedule ahead. Audited."""
    delivery = await repository.lock_delivery(uow, system_id, message_id)
    if delivery is None:
        raise NotFound("The system has no such message.")
    if not delivery.sendable:
        raise Conflict("The message named an erased subject; its body is gone.")
    if delivery.status not in RETRYABLE:
        raise Conflict(
            f"The message is {delivery.status}; only failed or exhausted ones are sent again."
        )
    now = utcnow()
    await repository.send_again(uow, system_id, message_id, now)
    await audit.record(
        uow,
        "delivery_retried",
        actor,
        target=f"{system_id}/{message_id}",
        details={"status_before": delivery.status, "attempts": delivery.attempts},
    )
    outbox.ring_on_commit(uow)
    again = replaced(delivery, status="pending", next_attempt_at=now, streak=0)
    return represent_delivery(again)
