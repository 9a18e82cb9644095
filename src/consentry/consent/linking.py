"""Linking: a visitor's banner choice follows them into their account, under strict conditions.

On a shared school computer a stranger's click must not become a learner's proof of consent, so
a choice carries over only when the learner has none (or only one under an older policy
version) and the visitor's choice is at most a day old; each anonymous id links once.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from consentry.auth import Caller
from consentry.consent import change_repository, link_repository, repository
from consentry.consent.cache import ConsentCache
from consentry.consent.chain import record_hash
from consentry.consent.repository import StoredConsent, StoredRecord
from consentry.consent.service import RequestFacts, consent_changed, next_state, represent
from consentry.db import UnitOfWork, format_timestamp
from consentry.errors import Conflict, SubjectErased, ValidationFailed
from consentry.policy import CATEGORIES, OPTIONAL_CATEGORIES, Policy
from consentry.pseudonyms import Pseudonyms
from consentry.subjects import is_anonymous

# How old the visitor's choice may be: older, and whoever sits at the computer now may not be
# the one who clicked.
WINDOW = timedelta(hours=24)
METHOD = "linked"


async def link(
    uow: UnitOfWork,
    policy: Policy,
    pseudonyms: Pseudonyms,
    cache: ConsentCache,
    caller: Caller,
    anonymous_id: str,
    facts: RequestFacts,
    now: datetime,
) -> dict[str, Any]:
    """Carry the visitor's choice over to the learner if the rules allow; use the id up either way.

    The learner's write lock is taken first, as every consent write takes it, so a concurrent
    write for the learner comes wholly before or after; then the visitor's row is locked, so a
    concurrent link of the same id or a visitor's write waits. Returns the learner's state.
    """
    learner_id = caller.subject_id
    assert learner_id is not None  # the route admits the learner's own token only
    if is_anonymous(learner_id):
        raise ValidationFailed(
            "An anonymous choice is linked into a signed-in learner, not into another visitor.",
            errors=[{"loc": ["path", "subject_id"], "msg": "anonymous subject", "type": "value"}],
        )
    stored, erased = await repository.lock_state(uow, learner_id, pseudonyms.of(learner_id))
    if erased:
        raise SubjectErased("This subject was erased.")
    has_row, visitor_erased = await link_repository.lock_existing(
        uow, anonymous_id, pseudonyms.of(anonymous_id)
    )
    if visitor_erased:
        raise _used_up()
    visitor = await link_repository.latest_choice(uow, anonymous_id) if has_row else None
    learner = await link_repository.latest_choice(uow, learner_id)
    carried = None
    if _carries(policy, learner, visitor, now):
        assert visitor is not None
        subject_hash = pseudonyms.of(learner_id)
        stored = await _carry(uow, policy, cache, caller, subject_hash, stored, visitor, facts, now)
        carried = stored.receipt_id
    elif stored is None:
        await link_repository.drop_placeholder(uow, learner_id)
    if not await link_repository.use_up(uow, anonymous_id, learner_id, now, carried):
        raise _used_up()
    return represent(policy, learner_id, stored, facts)


def _used_up() -> Conflict:
    return Conflict("This anonymous id was linked already; it links once.")


def _carries(
    policy: Policy, learner: StoredRecord | None, visitor: StoredRecord | None, now: datetime
) -> bool:
    """Whether the visitor's latest choice carries over to the learner's."""
    if visitor is None or visitor.recorded_at < now - WINDOW:
        return False
    return learner is None or learner.policy_version != policy.version


async def _carry(
    uow: UnitOfWork,
    policy: Policy,
    cache: ConsentCache,
    caller: Caller,
    subject_hash: str,
    stored: StoredConsent | None,
    visitor: StoredRecord,
    facts: RequestFacts,
    now: datetime,
) -> StoredConsent:
    """Append the linked record to the learner's chain and make its choice the learner's."""
    learner_id = caller.subject_id
    assert learner_id is not None
    shown = represent(policy, learner_id, stored, replace(facts, region=visitor.region))
    before = {category: entry["granted"] for category, entry in shown["categories"].items()}
    after = dict(visitor.categories)
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "recorded_at": format_timestamp(now),
        "categories": after,
        "changed": [c for c in CATEGORIES if after[c] != before[c]],
        "source": visitor.source,
        "method": METHOD,
        "actor": caller.name,
        "policy_version": visitor.policy_version,
        "region": visitor.region,
        "language": visitor.language,
        "gpc": visitor.gpc,
        "linked_from": visitor.id,
    }
    record["hash"] = record_hash(stored.last_hash if stored else None, record)
    requested = {category: after[category] for category in OPTIONAL_CATEGORIES}
    state = next_state(shown, stored, record, requested, caller, now)
    await change_repository.record_change(
        uow,
        learner_id,
        StoredRecord(
            **{**record, "recorded_at": now},
            seq=shown["revision"] + 1,
            prev_hash=stored.last_hash if stored else None,
            ip=facts.ip,
            user_agent=facts.user_agent,
        ),
        state,
        # A carried choice is a change of the learner's consent like any other.
        consent_changed(learner_id, subject_hash, record, state, now),
    )
    uow.on_commit(lambda: cache.forget(learner_id))
    return state
