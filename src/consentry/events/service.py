"""The events rule: validate each event, judge it against its subject's consent, store it once."""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import ValidationError

from consentry.consent.gate import NO_RECORD, Gate
from consentry.db import Database, Reader, UnitOfWork, format_timestamp, utcnow
from consentry.events import repository
from consentry.events.counters import EventCounts
from consentry.events.plain import plain_event, schema_reading
from consentry.events.repository import Key, NewEvent
from consentry.events.schemas import MAX_FUTURE_SECONDS, MAX_OBJECT_BYTES
from consentry.group_commit import GroupCommit
from consentry.pagination import Cursors
from consentry.policy import CATEGORIES
from consentry.pseudonyms import Pseudonyms
from consentry.routing import nests_deeper

_FUTURE = timedelta(seconds=MAX_FUTURE_SECONDS)
# An escaped U+0000: `\u0000` after an even number of backslashes (an odd one escapes the `\`).
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_CATEGORIES = frozenset(CATEGORIES)
# The body, the `events` list and the event itself hold an event's `properties` and `context`.
_EVENT_OBJECT_LEVEL = 3
# The list its cursors belong to: one issued for another list is refused here.
_LIST = "events"


_NOTHING: frozenset[str] = frozenset()


class Candidate(NamedTuple):
    """A valid event, time-corrected, ready to be judged: its place among the results, and its row.

    `denied` holds categories its sender itself says are denied: they can only refuse more.
    """

    position: int
    key: Key
    row: NewEvent
    denied: frozenset[str] = _NOTHING


def _invalid(event_id: Any, detail: str) -> dict[str, Any]:
    return {
        "event_id": event_id if isinstance(event_id, str) else None,
        "status": "rejected",
        "reason": "invalid",
        "detail": detail,
    }


def _describe(error: ValidationError) -> str:
    """The problems of one event, each as `field: message`, for its `detail`."""
    parts = []
    for problem in error.errors(include_url=False)[:5]:
        where = ".".join(str(part) for part in problem["loc"]) or "event"
        message = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _sent_id(raw: Any) -> Any:
    return raw.get("event_id") if isinstance(raw, dict) else None


def _serialized(document: dict[str, Any], text: bytes, field: str, depth: int) -> str:
    # The batch is not walked for its depth as other bodies are (a 1 MiB walk would cost as much
    # as parsing it): each free-form object is, here, so that a deep one rejects its event only.
    # `text` is the document as `dumped` serialized it: empty past orjson's limit of 255 levels.
    if len(text) > MAX_OBJECT_BYTES:
        raise ValueError(f"{field}: more than {MAX_OBJECT_BYTES} bytes as JSON")
    # Nesting past `depth` takes more than twice `depth` in bytes and more than `depth` brackets, so
    # the common small object is never counted, let alone walked.
    if not text or (
        len(text) > 2 * depth
        and text.count(b"{") + text.count(b"[") > depth
        and nests_deeper(document, depth)
    ):
        raise ValueError(f"{field}: nested deeper than {depth} levels")
    # JSON may carry U+0000 (escaped, since orjson escapes every control character); PostgreSQL
    # stores it in neither text nor jsonb, so no database is asked to.
    if b"\\u0000" in text and _NUL.search(text):
        raise ValueError(f"{field}: holds U+0000, which cannot be stored")
    return text.decode()


def validate(
    events: list[Any],
    received_at: datetime,
    sent_at: datetime | None,
    max_depth: int,
    denied: Sequence[frozenset[str]] | None = None,
) -> tuple[list[dict[str, Any] | None], list[Candidate]]:
    """Each event checked on its own: the results decided already, and the events left to judge.

    With `sent_at`, every `occurred_at` is shifted by the sender's clock skew before anything
    else looks at it, the five-minute limit on future events included. `max_depth` bounds the
    nesting of the whole body, so `properties` and `context` (three levels in) get what is left.
    `denied`, beside `events`, holds for each the categories its sender says are denied.
    """
    depth = max_depth - _EVENT_OBJECT_LEVEL
    skew = received_at - sent_at if sent_at is not None else None
    latest = received_at + _FUTURE
    results: list[dict[str, Any] | None] = []
    candidates: list[Candidate] = []
    for index, raw in enumerate(events):
        event = plain_event(raw)
        try:
            if event is None:
                event = schema_reading(raw)
            occurred_at = event.occurred_at + skew if skew is not None else event.occurred_at
        except ValidationError as error:
            results.append(_invalid(_sent_id(raw), _describe(error)))
            continue
        except OverflowError:
            results.append(_invalid(_sent_id(raw), "occurred_at: out of range once corrected"))
            continue
        try:
            if occurred_at > latest:
                raise ValueError("occurred_at: more than 5 minutes in the future")
            if "\x00" in event.name:
                raise ValueError("name: holds U+0000, which cannot be stored")
            properties = _serialized(event.properties, event.properties_json, "properties", depth)
            context = _serialized(event.context, event.context_json, "context", depth)
        except ValueError as error:
            results.append(_invalid(_sent_id(raw), str(error)))
            continue
        row = NewEvent(
            subject_id=event.subject_id,
            event_id=event.event_id.lower(),
            category=event.category,
            name=event.name,
            occurred_at=occurred_at,
            received_at=received_at,
            properties=properties,
            context=context,
        )
        results.append(None)
        refused = denied[index] if denied is not None else _NOTHING
        candidates.append(Candidate(index, row.key, row, refused))
    return results, candidates


def _verdict(candidate: Candidate, gate: Gate) -> str | None:
    """Why the event is refused, or None when the rule lets it through."""
    category = candidate.row.category
    if category not in _CATEGORIES:
        return "unknown_category"
    if gate.erased:
        return "subject_erased"
    if category in candidate.denied:
        return "consent_denied"
    return None if gate.allows(category, candidate.row.occurred_at) else "consent_denied"


def _duplicate(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "status": "duplicate"}


def judge(
    results: list[dict[str, Any] | None],
    candidates: list[Candidate],
    gates: dict[str, Gate],
    earlier: Container[Key] = frozenset(),
) -> tuple[list[dict[str, Any]], dict[Key, Candidate]]:
    """Every result, in order, and the events accepted, by key: a repeat within the batch, or
    of a key in `earlier` (accepted before it in the same transaction), is a duplicate."""
    decided = list(results)
    accepted: dict[Key, Candidate] = {}
    for candidate in candidates:
        event_id = candidate.key[1]
        reason = _verdict(candidate, gates.get(candidate.key[0], NO_RECORD))
        if reason is not None:
            decided[candidate.position] = {
                "event_id": event_id,
                "status": "rejected",
                "reason": reason,
            }
        elif candidate.key in accepted or candidate.key in earlier:
            decided[candidate.position] = _duplicate(event_id)
        else:
            accepted[candidate.key] = candidate
            decided[candidate.position] = {"event_id": event_id, "status": "accepted"}
    return decided, accepted  # type: ignore[return-value]  # every index was decided


class Batch(NamedTuple):
    """A batch validated and waiting for the database: the results decided already, the events
    left to judge, and the keyed hash of each of their subjects."""

    results: list[dict[str, Any] | None]
    candidates: list[Candidate]
    hashes: dict[str, str]


# The event writer: batches judged and stored together, one transaction for all that wait.
EventWriter = GroupCommit[Batch, list[dict[str, Any]]]
# Transactions writing batches at once, per process (at most the pool's size). Under the bench's
# event load, 8 wrote about a quarter more events per second than 2 or 4 (31,200 a second against
# 25,100 and 25,400, means of 2 to 5 runs): a writer waits on the event loop between its
# statements, and others keep the database busy meanwhile.
WRITERS = 8
# Events a group holds at most: a transaction, and its subjects' locks, stay short.
GROUP_EVENTS = 2000


def event_writer(database: Database, pool_size: int) -> EventWriter:
    """The process's event writer, for a pool of `pool_size` connections."""
    return GroupCommit(
        database,
        write_batches,
        writers=min(WRITERS, pool_size),
        size=lambda batch: len(batch.candidates),
        limit=GROUP_EVENTS,
    )


async def decide(
    writer: EventWriter,
    pseudonyms: Pseudonyms,
    events: list[Any],
    sent_at: datetime | None,
    max_depth: int,
    received_at: datetime | None = None,
    denied: Sequence[frozenset[str]] | None = None,
) -> list[dict[str, Any]]:
    """Judge a batch and store what the rule lets through: one result each, once committed.

    The one implementation of the rule, for the native intake and the analytics libraries'
    alike (which map their messages to events first, and may say which categories each message
    itself denies: see `validate`). Validation needs no database; the rest is the writer's, with
    whatever other batches wait for the database at the same time (see `write_batches`).
    """
    batch = prepare(pseudonyms, events, received_at or utcnow(), sent_at, max_depth, denied)
    if not batch.candidates:
        return batch.results  # type: ignore[return-value]  # every event was decided
    return await writer.submit(batch)


def prepare(
    pseudonyms: Pseudonyms,
    events: list[Any],
    received_at: datetime,
    sent_at: datetime | None,
    max_depth: int,
    denied: Sequence[frozenset[str]] | None = None,
) -> Batch:
    """A batch validated (see `validate`), with its subjects' keyed hashes: ready for the writer."""
    results, candidates = validate(events, received_at, sent_at, max_depth, denied)
    subjects = {candidate.key[0] for candidate in candidates}
    return Batch(results, candidates, {subject: pseudonyms.of(subject) for subject in subjects})


async def write_batches(uow: UnitOfWork, batches: list[Batch]) -> list[list[dict[str, Any]]]:
    """Judge the batches against their subjects' gates and store what the rule lets through, in
    one transaction: each batch's results, in order.

    Judged as if committed one after another in this order: an event a batch repeats from an
    earlier batch of the group is a `duplicate`, as it would be once that batch had committed.
    """
    hashes = {subject: hashed for batch in batches for subject, hashed in batch.hashes.items()}
    subjects = sorted(hashes)
    gates = await repository.share_gates(uow, subjects, [hashes[s] for s in subjects])
    kept: dict[Key, Candidate] = {}
    judged: list[tuple[list[dict[str, Any]], dict[Key, Candidate]]] = []
    for batch in batches:
        decided, accepted = judge(batch.results, batch.candidates, gates, earlier=kept)
        kept.update(accepted)
        judged.append((decided, accepted))
    # Sorted by key, so concurrent groups take their key locks in the same order.
    inserted = await repository.store(uow, [kept[key].row for key in sorted(kept)])
    for decided, accepted in judged:
        for key, candidate in accepted.items():
            if key not in inserted:  # stored before, by a retry or a concurrent group
                decided[candidate.position] = _duplicate(key[1])
    return [decided for decided, _ in judged]


async def ingest(
    writer: EventWriter,
    pseudonyms: Pseudonyms,
    counts: EventCounts,
    events: list[Any],
    sent_at: datetime | None,
    max_depth: int,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """Judge and store a batch; the answer, once it is committed."""
    decided = await decide(writer, pseudonyms, events, sent_at, max_depth, received_at)
    outcomes = [(result["status"], result.get("reason", "")) for result in decided]
    counts.add(outcomes)
    return _summary(outcomes, decided)


def _summary(outcomes: list[tuple[str, str]], decided: list[dict[str, Any]]) -> dict[str, Any]:
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for status, _ in outcomes:
        totals[status] += 1
    return {
        "accepted": totals["accepted"],
        "duplicates": totals["duplicate"],
        "rejected": totals["rejected"],
        "results": decided,
    }


async def read_events(
    reader: Reader,
    subject_id: str,
    *,
    category: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
    cursors: Cursors,
) -> dict[str, Any]:
    """A page of the subject's stored events, newest first."""
    before = cursors.decode_time(_LIST, cursor) if cursor is not None else None
    rows = await repository.page(
        reader,
        subject_id,
        category=category,
        since=since,
        until=until,
        before=before,
        limit=limit + 1,
    )
    items = [
        {
            **row,
            "occurred_at": format_timestamp(row["occurred_at"]),
            "received_at": format_timestamp(row["received_at"]),
        }
        for row in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = cursors.encode_time(_LIST, last["occurred_at"], last["event_id"])
    return {"items": items, "next_cursor": next_cursor}
