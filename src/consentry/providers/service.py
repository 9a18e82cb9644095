"""Provider rules: the registry's audited changes, and which providers a consent lets data reach."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace as replaced
from typing import Any

from consentry.audit import service as audit
from consentry.consent import service as consent
from consentry.consent.cache import ConsentCache
from consentry.consent.service import RequestFacts
from consentry.db import (
    ConstraintViolation,
    Database,
    Reader,
    UnitOfWork,
    format_timestamp,
    utcnow,
)
from consentry.errors import Conflict, NotFound, ValidationFailed
from consentry.pagination import Cursors, invalid_cursor
from consentry.policy import REQUIRED_CATEGORY, Policy
from consentry.providers import repository
from consentry.providers.repository import StoredProvider
from consentry.providers.schemas import (
    EDITABLE_FIELDS,
    ProviderCreate,
    ProviderReplace,
    is_provider_id,
)
from consentry.pseudonyms import Pseudonyms

# The list its cursors belong to: one issued for another list is refused here.
_LIST = "providers"
# The providers a subject's connections send data to: handed in by app.py, since the domain that
# knows them (integrations) uses this one, never the other way round.
ConnectedProviders = Callable[[Reader, str], Awaitable[list[str]]]


def translation(stored: StoredProvider, language: str | None) -> dict[str, Any] | None:
    """The provider's texts in `language` (or its primary language: `de` for `de-AT`), if any."""
    if language is None:
        return None
    wanted = language.lower()
    found: dict[str, Any] | None = stored.translations.get(wanted)
    if found is None:
        found = stored.translations.get(wanted.split("-")[0])
    return found


def represent(stored: StoredProvider, language: str | None = None) -> dict[str, Any]:
    """A stored provider as the API shows it, its name and purpose in `language` if translated."""
    texts = translation(stored, language) or {"name": stored.name, "purpose": stored.purpose}
    return {
        "id": stored.id,
        "name": texts["name"],
        "kind": stored.kind,
        "purpose": texts["purpose"],
        "data_shared": stored.data_shared,
        "category": stored.category,
        "countries": stored.countries,
        "transfer_mechanism": stored.transfer_mechanism,
        "opt_out_url": stored.opt_out_url,
        "translations": stored.translations,
        "created_at": format_timestamp(stored.created_at),
        "updated_at": format_timestamp(stored.updated_at),
    }


def _described(stored: StoredProvider) -> dict[str, Any]:
    """What the audit log keeps of a provider: its id and every editable field."""
    return {"id": stored.id, **{field: getattr(stored, field) for field in EDITABLE_FIELDS}}


def _after(cursor: str | None, cursors: Cursors) -> str | None:
    """The id a cursor continues after; 422 for a cursor this service did not issue."""
    if cursor is None:
        return None
    after: str = cursors.decode(_LIST, cursor, {"after": str})["after"]
    # Only an id can be a place in the list; anything else would reach the database as text.
    if not is_provider_id(after):
        raise invalid_cursor()
    return after


async def read_page(
    reader: Reader,
    *,
    limit: int,
    cursor: str | None,
    cursors: Cursors,
    categories: Collection[str] | None = None,
    ids: Collection[str] = (),
    language: str | None = None,
) -> dict[str, Any]:
    """A page of providers ordered by id, only those of `categories` (or `ids`) if given."""
    after = _after(cursor, cursors)
    rows = await repository.page(
        reader, after=after, categories=categories, ids=ids, limit=limit + 1
    )
    items = [represent(row, language) for row in rows[:limit]]
    next_cursor = cursors.encode(_LIST, {"after": items[-1]["id"]}) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


async def read_one(reader: Reader, provider_id: str, language: str | None = None) -> dict[str, Any]:
    """One provider; NotFound when no provider has that id."""
    stored = await repository.get(reader, provider_id)
    if stored is None:
        raise NotFound("No provider has that id.")
    return represent(stored, language)


async def create(uow: UnitOfWork, provider: ProviderCreate, actor: str) -> dict[str, Any]:
    """Add a provider and its audit row; Conflict when the id is taken."""
    created = await _insert(uow, provider.id, provider, actor)
    if created is None:
        raise Conflict(f"A provider with id {provider.id!r} exists already.")
    return created


async def replace(
    uow: UnitOfWork, provider_id: str, provider: ProviderReplace, actor: str
) -> tuple[dict[str, Any], bool]:
    """Replace a provider's description, or create it; the provider and whether it was created.

    A description equal to the stored one changes nothing: no audit row, `updated_at` kept.
    """
    if provider.id is not None and provider.id != provider_id:
        raise ValidationFailed(
            "The body's id differs from the id in the path.",
            errors=[
                {"loc": ["body", "id"], "msg": "must be the id in the path", "type": "value_error"}
            ],
        )
    # A concurrent request may create or delete it between the two steps: try again then.
    while (current := await repository.lock(uow, provider_id)) is None:
        if (created := await _insert(uow, provider_id, provider, actor)) is not None:
            return created, True
    return await _change(uow, current, provider, actor), False


async def delete(uow: UnitOfWork, provider_id: str, actor: str) -> None:
    """Remove a provider and record what it was; NotFound when no provider has that id."""
    current = await repository.lock(uow, provider_id)
    if current is None:
        raise NotFound("No provider has that id.")
    try:
        await repository.remove(uow, provider_id)
    except ConstraintViolation:
        # An integration names it: the learners were told this provider receives their data.
        raise Conflict("An integration names this provider; change or remove it first.") from None
    await audit.record(
        uow,
        "provider_deleted",
        actor,
        target=provider_id,
        details={"before": _described(current)},
    )


async def _insert(
    uow: UnitOfWork,
    provider_id: str,
    provider: ProviderCreate | ProviderReplace,
    actor: str,
) -> dict[str, Any] | None:
    """Insert the provider and its audit row; None, writing nothing, when the id is taken."""
    now = utcnow()
    stored = StoredProvider(
        id=provider_id,
        **provider.model_dump(include=set(EDITABLE_FIELDS)),
        created_at=now,
        updated_at=now,
    )
    if not await repository.insert(uow, stored):
        return None
    details = {"after": _described(stored)}
    await audit.record(uow, "provider_created", actor, target=provider_id, details=details)
    return represent(stored)


async def _change(
    uow: UnitOfWork, current: StoredProvider, provider: ProviderReplace, actor: str
) -> dict[str, Any]:
    """Write the fields that differ, and an audit row naming each one's value before and after."""
    wanted = provider.model_dump(include=set(EDITABLE_FIELDS))
    changed = [field for field in EDITABLE_FIELDS if getattr(current, field) != wanted[field]]
    if not changed:
        return represent(current)
    values = {field: wanted[field] for field in changed}
    now = utcnow()
    await repository.update_fields(uow, current.id, {**values, "updated_at": now})
    before = {field: getattr(current, field) for field in changed}
    await audit.record(
        uow,
        "provider_changed",
        actor,
        target=current.id,
        details={"before": before, "after": values},
    )
    return represent(replaced(current, **values, updated_at=now))


def granted_categories(state: Mapping[str, Any]) -> list[str]:
    """The categories a rendered consent state grants now; the required one always."""
    granted = {name for name, entry in state["categories"].items() if entry["granted"]}
    return sorted(granted | {REQUIRED_CATEGORY})


async def read_for_subject(
    database: Database,
    cache: ConsentCache,
    pseudonyms: Pseudonyms,
    policy: Policy,
    subject_id: str,
    facts: RequestFacts,
    *,
    limit: int,
    cursor: str | None,
    connected: ConnectedProviders | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """A page of the providers the subject's data may reach now: those its consent grants (its
    defaults if none), and those `connected` names (the integrations it approved or was told of).
    """
    state = await consent.read_consent(database, cache, pseudonyms, policy, subject_id, facts)
    categories = granted_categories(state)
    async with database.reader() as reader:
        ids = await connected(reader, subject_id) if connected is not None else []
        return await read_page(
            reader,
            limit=limit,
            cursor=cursor,
            cursors=pseudonyms.cursors,
            categories=categories,
            ids=ids,
            language=language,
        )
