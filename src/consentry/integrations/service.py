"""Integration rules: the audited catalogue, and each learner's requests, decisions and history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as replaced
from datetime import datetime
from typing import Any

import orjson

from consentry import subject_locks
from consentry.audit import service as audit
from consentry.auth import Caller
from consentry.consent.chain import record_hash
from consentry.consent.service import ensure_live
from consentry.db import Database, Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import (
    Conflict,
    NotFound,
    SubjectErased,
    UnknownScope,
    ValidationFailed,
)
from consentry.integrations import repository
from consentry.integrations.cache import EVERYONE, ConnectionCache
from consentry.integrations.repository import (
    ChainHead,
    StoredConnection,
    StoredIntegration,
    StoredIntegrationRecord,
)
from consentry.integrations.schemas import (
    EDITABLE_FIELDS,
    ConnectionDecision,
    IntegrationCreate,
    IntegrationReplace,
    is_integration_id,
)
from consentry.pagination import Cursors, invalid_cursor
from consentry.providers import repository as providers
from consentry.pseudonyms import Pseudonyms
from consentry.subjects import is_anonymous
from consentry.systems import outbox

# The fields of an integration record that its hash covers (consent.chain's rule: every field
# but the hash itself, the previous hash, which the hash chains in, and the subject).
HASHED_FIELDS = ("id", "recorded_at", "integration_id", "status", "scopes", "source", "actor")
# The lists their cursors belong to: one issued for another list is refused.
_CATALOGUE = "integrations"
_CONNECTIONS = "integration_connections"
_HISTORY = "integration_history"
# A decision or revocation by a learner (or a key relaying one) stands until they change it.
_LEARNERS_OWN = ("learner", "platform")


def _moment(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


# ---- representations ----


def represent(stored: StoredIntegration, language: str | None = None) -> dict[str, Any]:
    """An integration as the API shows it, its texts in `language` where translated."""
    translation = stored.translations.get(language or "", {})
    scope_texts = translation.get("scopes", {})
    return {
        "id": stored.id,
        "name": translation.get("name") or stored.name,
        "kind": stored.kind,
        "provider_id": stored.provider_id,
        "purpose": translation.get("purpose") or stored.purpose,
        "data_shared": stored.data_shared,
        "scopes": [
            {"id": scope["id"], "description": scope_texts.get(scope["id"], scope["description"])}
            for scope in stored.scopes
        ],
        "default": stored.default,
        "translations": stored.translations,
        "created_at": format_timestamp(stored.created_at),
        "updated_at": format_timestamp(stored.updated_at),
    }


def represent_connection(integration_id: str, stored: StoredConnection | None) -> dict[str, Any]:
    """A learner's connection as the API shows it; `none` when there is no row."""
    if stored is None:
        return {
            "integration_id": integration_id,
            "status": "none",
            "scopes": [],
            "requested_at": None,
            "decided_at": None,
            "source": None,
        }
    return {
        "integration_id": integration_id,
        "status": stored.status,
        "scopes": stored.scopes,
        "requested_at": _moment(stored.requested_at),
        "decided_at": _moment(stored.decided_at),
        "source": stored.source,
    }


def represent_record(record: StoredIntegrationRecord) -> dict[str, Any]:
    """A history record as the API shows it."""
    return {
        "id": record.id,
        "recorded_at": format_timestamp(record.recorded_at),
        "integration_id": record.integration_id,
        "status": record.status,
        "scopes": record.scopes,
        "source": record.source,
        "actor": record.actor,
        "hash": record.hash,
        "prev_hash": record.prev_hash,
    }


# ---- the catalogue ----


def _described(stored: StoredIntegration) -> dict[str, Any]:
    """What the audit log keeps of an integration: its id and every editable field."""
    return {"id": stored.id, **{field: getattr(stored, field) for field in EDITABLE_FIELDS}}


def _after(cursor: str | None, cursors: Cursors, kind: str) -> str | None:
    """The integration id a cursor continues after; 422 for a cursor this service did not issue."""
    if cursor is None:
        return None
    after: str = cursors.decode(kind, cursor, {"after": str})["after"]
    if not is_integration_id(after):
        raise invalid_cursor()
    return after


async def read_page(
    reader: Reader, *, language: str | None, limit: int, cursor: str | None, cursors: Cursors
) -> dict[str, Any]:
    """A page of the catalogue ordered by id."""
    after = _after(cursor, cursors, _CATALOGUE)
    rows = await repository.page(reader, after=after, limit=limit + 1)
    items = [represent(row, language) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = cursors.encode(_CATALOGUE, {"after": items[-1]["id"]}) if more else None
    return {"items": items, "next_cursor": next_cursor}


async def read_one(reader: Reader, integration_id: str, language: str | None) -> dict[str, Any]:
    """One integration; NotFound when none has that id."""
    stored = await repository.get(reader, integration_id)
    if stored is None:
        raise NotFound("No integration has that id.")
    return represent(stored, language)


def _check_provider_named(provider_exists: bool) -> None:
    if not provider_exists:
        raise ValidationFailed(
            "The provider_id names no provider of the registry.",
            errors=[
                {
                    "loc": ["body", "provider_id"],
                    "msg": "must name an existing provider",
                    "type": "value_error",
                }
            ],
        )


async def create(uow: UnitOfWork, body: IntegrationCreate, actor: str) -> dict[str, Any]:
    """Add an integration and its audit row; Conflict when the id is taken."""
    created = await _insert(uow, body.id, body, actor)
    if created is None:
        raise Conflict(f"An integration with id {body.id!r} exists already.")
    return represent(created)


async def replace(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    integration_id: str,
    body: IntegrationReplace,
    caller: Caller,
) -> tuple[dict[str, Any], bool]:
    """Replace an integration's description, or create it; it and whether it was created.

    Scopes it no longer declares leave every connection's `scopes`, each change recorded in the
    learner's history (source `admin`) and announced.
    """
    if body.id is not None and body.id != integration_id:
        raise ValidationFailed(
            "The body's id differs from the id in the path.",
            errors=[
                {"loc": ["body", "id"], "msg": "must be the id in the path", "type": "value_error"}
            ],
        )
    while (current := await repository.lock(uow, integration_id)) is None:
        if (created := await _insert(uow, integration_id, body, caller.name)) is not None:
            return represent(created), True
    wanted = body.model_dump(include=set(EDITABLE_FIELDS))
    changed = [field for field in EDITABLE_FIELDS if getattr(current, field) != wanted[field]]
    if not changed:
        return represent(current), False
    if "provider_id" in changed:
        _check_provider_named(await providers.lock(uow, wanted["provider_id"]) is not None)
    values = {field: wanted[field] for field in changed}
    now = utcnow()
    await repository.update_integration(uow, integration_id, {**values, "updated_at": now})
    await audit.record(
        uow,
        "integration_changed",
        caller.name,
        target=integration_id,
        details={"before": {field: getattr(current, field) for field in changed}, "after": values},
    )
    declared = {scope["id"] for scope in wanted["scopes"]}
    if {scope["id"] for scope in current.scopes} - declared:
        await _for_each_connection(
            uow, cache, pseudonyms, integration_id, now, caller, keep=declared
        )
    return represent(replaced(current, **values, updated_at=now)), False


async def delete(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    integration_id: str,
    caller: Caller,
) -> None:
    """Remove an integration, revoking every connection to it; NotFound when there is none."""
    current = await repository.lock(uow, integration_id)
    if current is None:
        raise NotFound("No integration has that id.")
    await _for_each_connection(uow, cache, pseudonyms, integration_id, utcnow(), caller, keep=None)
    await repository.remove(uow, integration_id)
    uow.on_commit(lambda: cache.forget(EVERYONE))
    await audit.record(
        uow,
        "integration_deleted",
        caller.name,
        target=integration_id,
        details={"before": _described(current)},
    )


async def _insert(
    uow: UnitOfWork,
    integration_id: str,
    body: IntegrationCreate | IntegrationReplace,
    actor: str,
) -> StoredIntegration | None:
    """Insert the integration and its audit row; None, writing nothing, when the id is taken."""
    # Locked, so the provider cannot go before this commits (it may not go while named).
    _check_provider_named(await providers.lock(uow, body.provider_id) is not None)
    now = utcnow()
    stored = StoredIntegration(
        id=integration_id,
        **body.model_dump(include=set(EDITABLE_FIELDS)),
        created_at=now,
        updated_at=now,
    )
    if not await repository.insert_integration(uow, stored):
        return None
    details = {"after": _described(stored)}
    await audit.record(uow, "integration_created", actor, target=integration_id, details=details)
    return stored


async def _for_each_connection(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    integration_id: str,
    now: datetime,
    caller: Caller,
    *,
    keep: set[str] | None,
) -> None:
    """Narrow every connection to the `keep` scopes, or revoke each (None), as the admin's act.

    The integration is locked, so no learner changes a connection to it meanwhile; erasure is
    kept out of the learners it touches before they are read again, so none is written back.
    """
    subjects = [subject for subject, _ in await repository.connections_to(uow, integration_id)]
    if not subjects:
        return
    await subject_locks.share(uow, subjects)
    for subject_id, current in await repository.connections_to(uow, integration_id):
        if keep is None:
            if current.status == "revoked":
                continue  # nothing flows already: revoking again would record nothing new
            after = replaced(current, status="revoked", scopes=[], source="admin", decided_at=now)
        else:
            scopes = [scope for scope in current.scopes if scope in keep]
            if scopes == current.scopes:
                continue
            after = replaced(current, scopes=scopes, source="admin")
        head = await repository.lock_chain(uow, subject_id)
        await _write(uow, cache, pseudonyms, subject_id, head, after, caller.name, now, exists=True)


# ---- a learner's connections ----


async def check(
    database: Database,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    subject_id: str,
    integration_id: str,
) -> bytes:
    """The learner's connection to one integration, as the answer's JSON body: the check before
    any data is exchanged.

    From memory when this process has heard of every change since it read it, and then the body
    made for it last time.
    """
    found = cache.check(subject_id, integration_id)
    if found is None:
        epoch = cache.epoch
        async with database.reader() as reader:
            found = await repository.check(
                reader, subject_id, pseudonyms.of(subject_id), integration_id
            )
        # Only what exists is kept: an erased learner or unknown integration is rare.
        if not found.erased and found.integration_exists:
            cache.fill_check(subject_id, integration_id, found, epoch)
    if found.erased:
        raise SubjectErased("This subject was erased.")
    if not found.integration_exists:
        raise NotFound("No integration has that id.")
    return cache.body(
        subject_id,
        integration_id,
        found,
        lambda: orjson.dumps(represent_connection(integration_id, found.connection)),
    )


async def read_connections(
    reader: Reader,
    pseudonyms: Pseudonyms,
    subject_id: str,
    *,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A page of every integration with the learner's connection, ordered by integration id."""
    cursors = pseudonyms.cursors
    after = _after(cursor, cursors, _CONNECTIONS)
    await ensure_live(reader, pseudonyms, subject_id)
    rows = await repository.subject_page(reader, subject_id, after=after, limit=limit + 1)
    items = [
        represent_connection(integration_id, stored) for integration_id, stored in rows[:limit]
    ]
    more = len(rows) > limit
    next_cursor = (
        cursors.encode(_CONNECTIONS, {"after": items[-1]["integration_id"]}) if more else None
    )
    return {"items": items, "next_cursor": next_cursor}


async def read_history(
    reader: Reader, pseudonyms: Pseudonyms, subject_id: str, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """A page of the learner's integration history, newest first."""
    cursors = pseudonyms.cursors
    before = cursors.decode(_HISTORY, cursor, {"seq": int})["seq"] if cursor else None
    await ensure_live(reader, pseudonyms, subject_id)
    records = await repository.history(reader, subject_id, before, limit + 1)
    page = records[:limit]
    more = len(records) > limit
    next_cursor = cursors.encode(_HISTORY, {"seq": page[-1].seq}) if more else None
    return {"items": [represent_record(r) for r in page], "next_cursor": next_cursor}


@dataclass(frozen=True)
class _Locked:
    """What a change of one connection starts from, everything it depends on locked."""

    integration: StoredIntegration
    head: ChainHead
    current: StoredConnection | None


async def _lock(
    uow: UnitOfWork, pseudonyms: Pseudonyms, subject_id: str, integration_id: str
) -> _Locked:
    """Keep erasure out, refuse an erased learner, then lock the integration, chain, connection.

    Every writer takes them in this order (a catalogue change takes the integration first and
    cannot meet a learner's writer halfway: they both need the integration).
    """
    await subject_locks.share(uow, [subject_id])
    await ensure_live(uow, pseudonyms, subject_id)
    integration = await repository.share(uow, integration_id)
    if integration is None:
        raise NotFound("No integration has that id.")
    head = await repository.lock_chain(uow, subject_id)
    current = await repository.lock_connection(uow, subject_id, integration_id)
    return _Locked(integration, head, current)


def _declared(integration: StoredIntegration, scopes: Sequence[str]) -> list[str]:
    """`scopes` when the integration declares every one; UnknownScope otherwise."""
    declared = {scope["id"] for scope in integration.scopes}
    unknown = [scope for scope in scopes if scope not in declared]
    if unknown:
        raise UnknownScope(
            f"The integration declares no scope {', '.join(map(repr, unknown))}.",
            errors=[
                {
                    "loc": ["body", "scopes"],
                    "msg": f"undeclared scope {s!r}",
                    "type": "unknown_scope",
                }
                for s in unknown
            ],
        )
    return list(scopes)


def _source_of(caller: Caller) -> str:
    """Who decided: the learner's own token, the privacy team, or a key relaying the learner."""
    if caller.kind != "key":
        return "learner"
    return "admin" if caller.is_admin else "platform"


async def request_connection(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    caller: Caller,
    subject_id: str,
    integration_id: str,
    scopes: Sequence[str],
) -> tuple[dict[str, Any], bool]:
    """The platform asks the learner (`ask`) or tells them (`inform`); the connection, and
    whether a request was recorded (201) or an approval already covers it (200)."""
    locked = await _lock(uow, pseudonyms, subject_id, integration_id)
    wanted = _declared(locked.integration, scopes)
    current = locked.current
    if current is not None and current.status == "approved":
        if set(wanted) <= set(current.scopes):
            return represent_connection(integration_id, current), False
        raise Conflict("The learner approved fewer scopes; only they can approve more.")
    learners_own = current is not None and current.source in _LEARNERS_OWN
    if current is not None and current.status in ("declined", "revoked") and learners_own:
        raise Conflict(f"The learner {current.status} this connection; only they can change it.")
    now = utcnow()
    inform = locked.integration.default == "inform"
    after = StoredConnection(
        integration_id=integration_id,
        status="informed" if inform else "pending",
        scopes=wanted,
        source="notice" if inform else "platform",
        requested_at=now,
        decided_at=None,
    )
    exists = current is not None
    await _write(
        uow, cache, pseudonyms, subject_id, locked.head, after, caller.name, now, exists=exists
    )
    return represent_connection(integration_id, after), True


async def decide(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    caller: Caller,
    subject_id: str,
    integration_id: str,
    decision: ConnectionDecision,
) -> dict[str, Any]:
    """Record the learner's approval of some declared scopes, or their decline, from any status."""
    locked = await _lock(uow, pseudonyms, subject_id, integration_id)
    approve = decision.decision == "approve"
    scopes = _declared(locked.integration, decision.scopes) if approve else []
    status = "approved" if approve else "declined"
    return await _settle(uow, cache, pseudonyms, caller, subject_id, locked, status, scopes)


async def revoke(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    caller: Caller,
    subject_id: str,
    integration_id: str,
) -> dict[str, Any]:
    """Revoke the connection: nothing flows any more, whatever it was."""
    locked = await _lock(uow, pseudonyms, subject_id, integration_id)
    return await _settle(uow, cache, pseudonyms, caller, subject_id, locked, "revoked", [])


async def _settle(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    caller: Caller,
    subject_id: str,
    locked: _Locked,
    status: str,
    scopes: list[str],
) -> dict[str, Any]:
    """Write a decision or revocation; one that repeats the connection as it is records nothing."""
    current, source = locked.current, _source_of(caller)
    integration_id = locked.integration.id
    if current is not None and (current.status, current.scopes, current.source) == (
        status,
        scopes,
        source,
    ):
        return represent_connection(integration_id, current)
    now = utcnow()
    after = StoredConnection(
        integration_id=integration_id,
        status=status,
        scopes=scopes,
        source=source,
        requested_at=current.requested_at if current is not None else None,
        decided_at=now,
    )
    exists = current is not None
    await _write(
        uow, cache, pseudonyms, subject_id, locked.head, after, caller.name, now, exists=exists
    )
    return represent_connection(integration_id, after)


async def _write(
    uow: UnitOfWork,
    cache: ConnectionCache,
    pseudonyms: Pseudonyms,
    subject_id: str,
    head: ChainHead,
    after: StoredConnection,
    actor: str,
    now: datetime,
    *,
    exists: bool,
) -> None:
    """Store the connection as it now holds, append its record to the chain, announce it."""
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "recorded_at": format_timestamp(now),
        "integration_id": after.integration_id,
        "status": after.status,
        "scopes": after.scopes,
        "source": after.source,
        "actor": actor,
    }
    digest = record_hash(head.last_hash, fields, HASHED_FIELDS)
    record = StoredIntegrationRecord(
        **{**fields, "recorded_at": now},
        seq=head.seq + 1,
        hash=digest,
        prev_hash=head.last_hash,
    )
    await repository.save_connection(uow, subject_id, after, exists=exists)
    await repository.append(uow, subject_id, record)
    # This process reads its own writes at once; the others hear of it from PostgreSQL.
    uow.on_commit(lambda: cache.forget(subject_id))
    await _announce(uow, pseudonyms, subject_id, after, now)


async def _announce(
    uow: UnitOfWork,
    pseudonyms: Pseudonyms,
    subject_id: str,
    connection: StoredConnection,
    now: datetime,
) -> None:
    """Announce `integration.changed` through the outbox, in the unit of work of the change.

    Every change of a connection passes here; the message is thin (ids and the decision).
    Anonymous subjects are never announced: their id is a capability.
    """
    if is_anonymous(subject_id):
        return
    data = {
        "subject_id": subject_id,
        "integration_id": connection.integration_id,
        "status": connection.status,
        "scopes": connection.scopes,
    }
    message = outbox.announcement(
        "integration.changed", data, subject_hash=pseudonyms.of(subject_id), now=now
    )
    await outbox.announce(uow, message)


async def flowing_provider_ids(reader: Reader, subject_id: str) -> list[str]:
    """The providers that receive the learner's data through a connection approved or informed."""
    return await repository.flowing_provider_ids(reader, subject_id)
