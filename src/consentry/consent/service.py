"""Consent rules: defaults, recording a choice, the history chain, the state's representation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from consentry.auth import Caller
from consentry.consent import change_repository, repository
from consentry.consent.cache import ConsentCache
from consentry.consent.chain import record_hash
from consentry.consent.repository import StoredConsent, StoredRecord
from consentry.consent.schemas import ChoiceContext
from consentry.db import Database, Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import (
    PreconditionFailed,
    RequiredCategory,
    SubjectErased,
    UnknownPolicyVersion,
    ValidationFailed,
)
from consentry.etags import matches, names_version, strong_etag
from consentry.pagination import Cursors
from consentry.policy import (
    CATEGORIES,
    OPTIONAL_CATEGORIES,
    REQUIRED_CATEGORY,
    Policy,
    consent_mode,
    normalize_region,
)
from consentry.pseudonyms import Pseudonyms
from consentry.subjects import is_anonymous
from consentry.systems import outbox

# The list its cursors belong to: one issued for another list is refused here.
_HISTORY = "consent_history"


@dataclass(frozen=True)
class RequestFacts:
    """What the request itself tells about the subject's situation."""

    region: str | None
    gpc: bool
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class ConsentChange:
    """A choice to record: what was chosen, by whom, from where, and the state it is based on."""

    choice: ChoiceContext
    categories: Mapping[str, bool]
    caller: Caller
    facts: RequestFacts
    # The request's If-Match (repeated lines joined), or None.
    if_match: str | None


# The category sources a choice leaves; defaults, GPC and notices leave `default` or `gpc`.
_CHOSEN_BY = frozenset({"user", "admin"})


def has_chosen(stored: StoredConsent | None) -> bool:
    """Whether the subject has recorded a choice: the one predicate for `stale`, banner, linking.

    A notice (the defaults consent.js applied in an opt-out region) is a record the event rule
    judges by, but not a choice: it leaves every category's source `default` or `gpc`, and a
    choice leaves `user` or `admin` on at least one. A subject whose records are all notices
    has therefore not chosen; linking never carries such a record over.
    """
    return stored is not None and any(
        stored.categories[category]["source"] in _CHOSEN_BY for category in OPTIONAL_CATEGORIES
    )


def represent(
    policy: Policy, subject_id: str, stored: StoredConsent | None, facts: RequestFacts | None
) -> dict[str, Any]:
    """The consent state as clients see it: recorded choices, or the defaults that apply.

    Until the subject chooses, the categories are the defaults of the request's situation
    (region, GPC), each with the `updated_at` of the recorded notice when that notice recorded
    the same value, else null: so consent.js sees when the defaults it applies changed. Without
    `facts` (a document, not a request) the state is shown as recorded.
    """
    chosen = has_chosen(stored)
    categories: dict[str, dict[str, Any]] = {}
    if stored is None or (facts is not None and not chosen):
        facts = facts or _NO_FACTS
        region = facts.region or (stored.region if stored else None)
        regime = policy.regime_for(region)
        for category, (default, source) in policy.defaults(regime, facts.gpc).items():
            recorded = stored.categories[category] if stored else None
            categories[category] = {
                "granted": default,
                "required": category == REQUIRED_CATEGORY,
                "source": source,
                "updated_at": (
                    recorded["updated_at"] if recorded and recorded["granted"] == default else None
                ),
            }
        version = policy.version
    else:
        region = stored.region
        regime = policy.regime_for(region)
        for category in CATEGORIES:
            entry = stored.categories[category]
            categories[category] = {
                "granted": entry["granted"],
                "required": category == REQUIRED_CATEGORY,
                "source": entry["source"],
                "updated_at": entry["updated_at"],
            }
        version = stored.policy_version
    granted = {category: entry["granted"] for category, entry in categories.items()}
    return {
        "subject_id": subject_id,
        "region": region,
        "regime": regime,
        "policy_version": version,
        "stale": chosen and stored is not None and stored.policy_version != policy.version,
        "revision": stored.revision if stored else 0,
        "categories": categories,
        "consent_mode": consent_mode(granted),
        "language": stored.language if stored else None,
        "updated_at": format_timestamp(stored.updated_at) if stored else None,
        "receipt_id": stored.receipt_id if stored else None,
    }


_NO_FACTS = RequestFacts(region=None, gpc=False, ip=None, user_agent=None)


def body_and_etag(state: dict[str, Any]) -> tuple[bytes, str]:
    """The response body of a state and its strong ETag."""
    body = orjson.dumps(state)
    return body, strong_etag(body, state["revision"])


async def read_consent(
    database: Database,
    cache: ConsentCache,
    pseudonyms: Pseudonyms,
    policy: Policy,
    subject_id: str,
    facts: RequestFacts,
) -> dict[str, Any]:
    """The subject's consent now, from memory when this process has heard of every change."""
    found, stored = cache.get(subject_id)
    if not found:
        epoch = cache.epoch
        async with database.reader() as reader:
            stored, erased = await repository.read_state(
                reader, subject_id, pseudonyms.of(subject_id)
            )
        # An erased subject is not kept: it is rare, and the tombstone is the only record.
        if erased:
            raise SubjectErased("This subject was erased.")
        cache.fill(subject_id, stored, epoch)
    return represent(policy, subject_id, stored, facts)


def _requested_categories(categories: Mapping[str, bool]) -> dict[str, bool]:
    """The optional categories a choice names; the schema has already refused unknown ones."""
    if categories.get(REQUIRED_CATEGORY) is False:
        raise RequiredCategory(f"'{REQUIRED_CATEGORY}' is always granted and cannot be withdrawn.")
    return {c: v for c, v in categories.items() if c != REQUIRED_CATEGORY}


def _unchanged(if_match: str, current: dict[str, Any], chosen: bool) -> bool:
    """Whether `If-Match` names the current state.

    A subject who has not chosen has nothing to lose, only default views that differ by region
    and GPC; a tag of any of them still holds, so a client that read with `?region=` may write
    without repeating it.
    """
    if matches(if_match, body_and_etag(current)[1]):
        return True
    return not chosen and names_version(if_match, current["revision"])


def _granted(categories: Mapping[str, Mapping[str, Any]]) -> dict[str, bool]:
    return {category: bool(categories[category]["granted"]) for category in CATEGORIES}


def _check_notice(
    policy: Policy, facts: RequestFacts, stored: StoredConsent | None, requested: dict[str, bool]
) -> None:
    """ValidationFailed unless a notice records exactly the defaults of an opt-out region."""
    region = facts.region or (stored.region if stored else None)
    if policy.regime_for(region) != "opt_out":
        raise ValidationFailed(
            "A notice is recorded only in an opt-out region; name the region.",
            errors=[
                {
                    "loc": ["body", "source"],
                    "msg": "notice needs an opt-out region",
                    "type": "value_error",
                }
            ],
        )
    defaults = policy.defaults("opt_out", facts.gpc)
    if any(granted != defaults[category][0] for category, granted in requested.items()):
        raise ValidationFailed(
            "A notice records the defaults that apply (after Global Privacy Control), no other "
            "values.",
            errors=[
                {
                    "loc": ["body", "categories"],
                    "msg": "must be the defaults that apply",
                    "type": "value_error",
                }
            ],
        )


@dataclass(frozen=True)
class _Write:
    """What a decided change writes: the record, the state after it, the message, if any."""

    record: StoredRecord
    state: StoredConsent
    announcement: outbox.Announcement | None


async def record_choice(
    uow: UnitOfWork,
    policy: Policy,
    pseudonyms: Pseudonyms,
    cache: ConsentCache,
    subject_id: str,
    change: ConsentChange,
) -> dict[str, Any]:
    """Record a choice or a notice; no change records nothing.

    A change is a new value for any category, or a confirmation under another policy version
    (which is what clears `stale`). A subject's first choice is always recorded. A notice is
    recorded only while the subject has not chosen, and only when the defaults changed.

    The state is read without a lock and the answer decided on it; a change to it is written
    only if the state is still that revision, in a statement that takes the subject's write lock
    itself. The state this process holds in memory is tried first, without a read: a learner's
    page read it just before the choice, or the learner's last change, made here, left it. A
    first choice, or a change that found the state moved on, is decided again under the write
    lock, as every write once was: the answer is the same, and concurrent writers still come one
    after the other.
    """
    choice, facts = change.choice, change.facts
    requested = _requested_categories(change.categories)
    if not policy.knows(choice.policy_version):
        raise UnknownPolicyVersion(f"Policy version {choice.policy_version!r} is not known.")
    if choice.region is not None:
        facts = replace(facts, region=normalize_region(choice.region))

    subject_hash = pseudonyms.of(subject_id)
    found, kept = cache.get(subject_id)
    if found and kept is not None:
        # Only a change is taken from memory, which may lag a change just committed elsewhere:
        # its write checks the revision. No change, or a refusal, is decided on a read below.
        try:
            answer, write = _decide(
                policy, subject_id, subject_hash, kept, change, facts, requested
            )
        except (PreconditionFailed, ValidationFailed):
            write = None
        if write is not None and await _write_if_unchanged(uow, cache, subject_id, write):
            return answer
    stored, erased = await repository.read_state_ahead(uow, subject_id, subject_hash)
    if erased:  # for good: a tombstone is never taken back
        raise SubjectErased("This subject was erased.")
    if stored is not None:
        # A refusal or no change, decided on a state committed during this request, is as
        # true as one decided under the lock would have been an instant before.
        answer, write = _decide(policy, subject_id, subject_hash, stored, change, facts, requested)
        if write is None or await _write_if_unchanged(uow, cache, subject_id, write):
            return answer
    stored, erased = await repository.lock_state(uow, subject_id, subject_hash)
    if erased:
        raise SubjectErased("This subject was erased.")
    answer, write = _decide(policy, subject_id, subject_hash, stored, change, facts, requested)
    if write is not None:
        epoch = cache.epoch
        await change_repository.record_change(
            uow, subject_id, write.record, write.state, write.announcement
        )
        _keep_on_commit(uow, cache, subject_id, write.state, epoch)
    return answer


async def _write_if_unchanged(
    uow: UnitOfWork, cache: ConsentCache, subject_id: str, write: _Write
) -> bool:
    """Make `write` if the subject's state is still the revision it follows; whether it was."""
    epoch = cache.epoch
    made = await change_repository.record_change_if_unchanged(
        uow, subject_id, write.record, write.state, write.announcement
    )
    if made:
        _keep_on_commit(uow, cache, subject_id, write.state, epoch)
    return made


def _keep_on_commit(
    uow: UnitOfWork, cache: ConsentCache, subject_id: str, state: StoredConsent, epoch: int
) -> None:
    """Once committed, the state written is what this process holds for the subject.

    It reads its own write at once, and the learner's next change (a preference center saves
    each toggle) is decided on it, without a read; other processes hear of it from PostgreSQL.
    """
    sender = uow.server_process  # the commit's own notice names it
    uow.on_commit(lambda: cache.keep_own(subject_id, state, epoch, sender))


def _decide(
    policy: Policy,
    subject_id: str,
    subject_hash: str,
    stored: StoredConsent | None,
    change: ConsentChange,
    facts: RequestFacts,
    requested: dict[str, bool],
) -> tuple[dict[str, Any], _Write | None]:
    """The answer to `change` from the `stored` state, and what to write for it, if anything.

    PreconditionFailed when If-Match names another state; ValidationFailed for a notice that
    may not be recorded.
    """
    choice = change.choice
    chosen = has_chosen(stored)
    current = represent(policy, subject_id, stored, facts)
    if change.if_match is not None and not _unchanged(change.if_match, current, chosen):
        raise PreconditionFailed("The consent changed since it was read; read it again.")

    # What the subject sees now, and what the event rule judges by now.
    shown = _granted(current["categories"])
    before = _granted(stored.categories) if stored is not None else shown
    after = {**shown, **requested}
    notice = choice.source == "notice"
    if notice:
        _check_notice(policy, facts, stored, requested)
    changed = [category for category in CATEGORIES if after[category] != before[category]]
    if notice and (chosen or (stored is not None and not changed)):
        return current, None  # a choice always wins; the same defaults again record nothing
    if (
        chosen
        and not changed
        and stored is not None
        and choice.policy_version == stored.policy_version
    ):
        return current, None

    now = utcnow()
    record = _new_record(choice, change.caller, facts, stored, after, changed, now)
    new_state = next_state(current, stored, record, requested, change.caller, now)
    stored_record = StoredRecord(
        **{**record, "recorded_at": now},
        seq=current["revision"] + 1,
        prev_hash=stored.last_hash if stored else None,
        ip=facts.ip,
        user_agent=facts.user_agent,
    )
    # Systems holding a learner's data hear of the change; an anonymous id is a capability and
    # is never announced.
    announcement = None
    if not is_anonymous(subject_id):
        announcement = consent_changed(subject_id, subject_hash, record, new_state, now)
    answer = represent(policy, subject_id, new_state, facts)
    return answer, _Write(stored_record, new_state, announcement)


def consent_changed(
    subject_id: str,
    subject_hash: str,
    record: dict[str, Any],
    state: StoredConsent,
    now: datetime,
) -> outbox.Announcement:
    """The thin `consent.changed` message of a recorded change: ids and decisions only."""
    data = {
        "subject_id": subject_id,
        "revision": state.revision,
        "categories": record["categories"],
        "changed": record["changed"],
        "policy_version": record["policy_version"],
        "effective_at": record["recorded_at"],
        "receipt_id": record["id"],
    }
    return outbox.announcement("consent.changed", data, subject_hash=subject_hash, now=now)


def _new_record(
    choice: ChoiceContext,
    caller: Caller,
    facts: RequestFacts,
    stored: StoredConsent | None,
    after: dict[str, bool],
    changed: list[str],
    now: datetime,
) -> dict[str, Any]:
    """The hashed fields of the next history record, and its hash."""
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "recorded_at": format_timestamp(now),
        "categories": after,
        "changed": changed,
        "source": choice.source,
        "method": choice.method,
        "actor": caller.name,
        "policy_version": choice.policy_version,
        "region": facts.region or (stored.region if stored else None),
        "language": choice.language or (stored.language if stored else None),
        "gpc": facts.gpc,
    }
    record["hash"] = record_hash(stored.last_hash if stored else None, record)
    return record


def next_state(
    current: dict[str, Any],
    stored: StoredConsent | None,
    record: dict[str, Any],
    requested: dict[str, bool],
    caller: Caller,
    now: datetime,
) -> StoredConsent:
    """The state after `record`: changed categories restart their time, the others keep it.

    A notice leaves the sources of the defaults it records. A choice marks what it names as
    chosen (a first choice that names nothing optional accepts what it was shown); what it
    does not name keeps its source.
    """
    chosen = has_chosen(stored)
    notice = record["source"] == "notice"
    accepts_shown = not chosen and not notice and not requested
    chosen_by = "admin" if caller.is_admin else "user"
    categories: dict[str, Any] = {}
    for category in CATEGORIES:
        kept = stored.categories[category] if stored and category not in record["changed"] else None
        if kept is not None and (chosen or (notice and category == REQUIRED_CATEGORY)):
            categories[category] = kept
            continue
        if category == REQUIRED_CATEGORY:
            source = "required"
        elif not notice and (category in requested or accepts_shown):
            source = chosen_by
        else:  # a notice, or what a first PATCH does not name: the default it was shown
            source = current["categories"][category]["source"]
        categories[category] = {
            "granted": record["categories"][category],
            "source": source,
            "updated_at": kept["updated_at"] if kept is not None else record["recorded_at"],
        }
    return StoredConsent(
        revision=current["revision"] + 1,
        categories=categories,
        policy_version=record["policy_version"],
        region=record["region"],
        language=record["language"],
        updated_at=now,
        receipt_id=record["id"],
        last_hash=record["hash"],
    )


def represent_record(record: StoredRecord) -> dict[str, Any]:
    """A history record as clients see it; `linked_from` only on a record that has one."""
    item = vars(record).copy()
    del item["seq"]
    if item["linked_from"] is None:
        del item["linked_from"]
    item["recorded_at"] = format_timestamp(record.recorded_at)
    return item


async def read_history(
    reader: Reader, subject_id: str, limit: int, cursor: str | None, cursors: Cursors
) -> dict[str, Any]:
    """A page of the subject's history, newest first."""
    before = cursors.decode(_HISTORY, cursor, {"seq": int})["seq"] if cursor else None
    records = await repository.history(reader, subject_id, before, limit + 1)
    page = records[:limit]
    next_cursor = cursors.encode(_HISTORY, {"seq": page[-1].seq}) if len(records) > limit else None
    return {"items": [represent_record(r) for r in page], "next_cursor": next_cursor}


async def ensure_live(reader: Reader, pseudonyms: Pseudonyms, subject_id: str) -> None:
    """SubjectErased (410) when the subject was erased: its routes answer nothing else."""
    if await repository.is_erased(reader, pseudonyms.of(subject_id)):
        raise SubjectErased("This subject was erased.")
