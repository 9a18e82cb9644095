"""Every SQL statement that writes a consent change: the record, the state, the message, and
the notice to every replica's read cache."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import bindparam, insert, update

from consentry import subject_locks
from consentry.consent.models import ConsentRecord, ConsentState
from consentry.consent.repository import CHANGES_CHANNEL, STATE_FIELDS, StoredConsent, StoredRecord
from consentry.db import Query, UnitOfWork
from consentry.systems import outbox
from consentry.systems.outbox import Announcement

# PostgreSQL: the record, the state and the notice to every replica's read cache (delivered on
# commit) in one round trip, the write being the service's second hottest path; a learner's
# change also stores its `consent.changed` message to the systems subscribed, in the same
# statement. SQLite cannot modify in a WITH, has no NOTIFY, and answers in-process: a statement
# each.
_RECORD_FIELDS_PG = """id, subject_id, seq, recorded_at, categories, changed, source, method,
                   actor, policy_version, region, language, gpc, user_agent, ip, hash, prev_hash,
                   linked_from"""
_RECORD_VALUES_PG = (
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $25"
)
_STATE_VALUES_PG = """revision = $18, categories = $19, policy_version = $10, region = $20,
    language = $21, updated_at = $22, receipt_id = $23, last_hash = $16"""
_INSERT_RECORD = Query(insert(ConsentRecord))
_UPDATE_STATE_IF_UNCHANGED = Query(
    update(ConsentState)
    .where(ConsentState.subject_id == bindparam("key"), ConsentState.revision == bindparam("was"))
    .values({name: bindparam(name) for name in STATE_FIELDS})
)


def _record_pg(with_message: bool) -> str:
    """The record, the state and the notice in one statement, under the subject's write lock."""
    message = (
        f",{outbox.pg_statement_part('$26', '$27', '$28', '$29', '$4')}" if with_message else ""
    )
    return f"""
WITH record AS (
    INSERT INTO consent_records ({_RECORD_FIELDS_PG})
    VALUES ({_RECORD_VALUES_PG})
){message}
UPDATE consent_states
SET {_STATE_VALUES_PG}
FROM (SELECT pg_notify($24, $2)) AS changed
WHERE subject_id = $2
"""  # noqa: S608  (only `$n` placeholders and fixed names are formatted in)


def _record_if_unchanged_pg(with_message: bool) -> str:
    """The same as a transaction of its own, made only if the state is still the one read.

    The state changes only from the revision it was read at ($26), under the subject's erasure
    lock ($27, $28), which the statement takes before it locks the row; the record, the message
    and the notice follow only a changed state, the notice naming it in the statement's one row.
    An erasure that committed meanwhile deleted the row: nothing is written.
    """
    message = (
        f",{outbox.pg_statement_part('$29', '$30', '$31', '$32', '$4', after='state')}"
        if with_message
        else ""
    )
    return f"""
WITH state AS (
    UPDATE consent_states
    SET {_STATE_VALUES_PG}
    WHERE subject_id = $2 AND revision = $26 AND {subject_locks.pg_shared_first("$27", "$28")}
    RETURNING subject_id
),
record AS (
    INSERT INTO consent_records ({_RECORD_FIELDS_PG})
    SELECT {_RECORD_VALUES_PG} FROM state
){message}
SELECT pg_notify($24, subject_id) FROM state
"""  # noqa: S608  (only `$n` placeholders and fixed names are formatted in)


# Keyed by whether a message goes with the change.
_RECORD_PG = {announced: _record_pg(announced) for announced in (False, True)}
_RECORD_IF_UNCHANGED_PG = {
    announced: _record_if_unchanged_pg(announced) for announced in (False, True)
}


def _pg_arguments(subject_id: str, record: StoredRecord, state: StoredConsent) -> list[Any]:
    """The values of the statements' `$1`-`$25`: the record, the state, the channel."""
    return [
        record.id,
        subject_id,
        record.seq,
        record.recorded_at,
        orjson.dumps(record.categories).decode(),
        orjson.dumps(record.changed).decode(),
        record.source,
        record.method,
        record.actor,
        record.policy_version,
        record.region,
        record.language,
        record.gpc,
        record.user_agent,
        record.ip,
        record.hash,
        record.prev_hash,
        state.revision,
        orjson.dumps(state.categories).decode(),
        state.region,
        state.language,
        state.updated_at,
        state.receipt_id,
        CHANGES_CHANNEL,
        record.linked_from,
    ]


def _message_arguments(announcement: Announcement) -> list[Any]:
    return [
        announcement.id,
        announcement.type,
        announcement.subject_hash,
        announcement.body_text(),
    ]


async def record_change(
    uow: UnitOfWork,
    subject_id: str,
    record: StoredRecord,
    state: StoredConsent,
    announcement: Announcement | None = None,
) -> None:
    """Append `record` to the subject's history and make `state` its current consent, under the
    subject's write lock (`lock_state`).

    An `announcement` is stored in the outbox with the change, for the systems subscribed.
    """
    if uow.dialect == "postgresql":
        arguments = _pg_arguments(subject_id, record, state)
        if announcement is not None:
            arguments += _message_arguments(announcement)
            outbox.ring_on_commit(uow)
        await uow.pg_execute(_RECORD_PG[announcement is not None], *arguments)
        return
    made = await _record_sqlite(uow, subject_id, record, state, announcement)
    assert made  # the write lock kept the state as it was read


async def record_change_if_unchanged(
    uow: UnitOfWork,
    subject_id: str,
    record: StoredRecord,
    state: StoredConsent,
    announcement: Announcement | None = None,
) -> bool:
    """`record_change` without the write lock held: made only if the subject's state is still
    the revision `state` follows, as `read_state_ahead` found it. Whether it was made.

    On PostgreSQL one statement takes the subject's erasure lock and makes the whole change or
    none of it; before anything else of the unit of work, it is a transaction by itself
    (UnitOfWork.pg_all_or_nothing), and nothing may follow a change it made. On SQLite the
    unit of work is the only writer since the read, and the change is always made.
    """
    if uow.dialect == "postgresql":
        arguments = _pg_arguments(subject_id, record, state)
        arguments += [state.revision - 1, *subject_locks.lock_arguments(subject_id)]
        if announcement is not None:
            arguments += _message_arguments(announcement)
        sql = _RECORD_IF_UNCHANGED_PG[announcement is not None]
        if not await uow.pg_all_or_nothing(sql, *arguments):
            return False
        if announcement is not None:
            outbox.ring_on_commit(uow)
        return True
    return await _record_sqlite(uow, subject_id, record, state, announcement)


async def _record_sqlite(
    uow: UnitOfWork,
    subject_id: str,
    record: StoredRecord,
    state: StoredConsent,
    announcement: Announcement | None,
) -> bool:
    """The change as SQLite writes it: a statement each; False if the state moved on."""
    was = state.revision - 1
    if not await uow.execute(
        _UPDATE_STATE_IF_UNCHANGED, {**vars(state), "key": subject_id, "was": was}
    ):
        return False
    await uow.execute(_INSERT_RECORD, {**vars(record), "subject_id": subject_id})
    if announcement is not None:
        await outbox.announce(uow, announcement)
    return True
