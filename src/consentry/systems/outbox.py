"""The transactional outbox: a change's message is stored in the unit of work of the change.

Every domain that announces a change uses this module, and it uses none of them: a message is
stored with one delivery per system subscribed to its type, and the delivery worker sends it
once the change has committed. A rolled-back change takes its message with it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from consentry.db import Reader, UnitOfWork, format_timestamp
from consentry.systems import repository
from consentry.systems.repository import DeliveryState, StoredMessage

MESSAGE_TYPES = ("consent.changed", "integration.changed", "erasure.requested")
_MESSAGE_ID_PREFIX = "msg_"


def new_message_id() -> str:
    """A fresh message id: `msg_` and 128 random bits, the `webhook-id` of every attempt."""
    return _MESSAGE_ID_PREFIX + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Announcement:
    """A message about to be stored: its id, type, the subject it names, and its body."""

    id: str
    type: str
    subject_hash: str | None
    body: dict[str, Any]
    created_at: datetime

    def body_text(self) -> str:
        """The body as JSON text."""
        return orjson.dumps(self.body).decode()

    def stored(self) -> StoredMessage:
        """The message as the outbox keeps it."""
        return StoredMessage(self.id, self.type, self.subject_hash, self.body, self.created_at)


def announcement(
    message_type: str, data: dict[str, Any], *, subject_hash: str | None, now: datetime
) -> Announcement:
    """A message of `message_type` carrying `data`, in the Standard Webhooks body shape."""
    body = {"type": message_type, "timestamp": format_timestamp(now), "data": data}
    return Announcement(new_message_id(), message_type, subject_hash, body, now)


async def announce(
    uow: UnitOfWork, message: Announcement, to: Sequence[str] | None = None
) -> list[str]:
    """Store the message for every system subscribed to its type (or for `to`); their ids.

    Nothing is stored when no system is to hear it.
    """
    system_ids = list(to) if to is not None else await repository.subscribers(uow, message.type)
    if system_ids:
        await repository.add_message(uow, message.stored(), system_ids)
        ring_on_commit(uow)
    return system_ids


async def erasure_recipients(reader: Reader) -> list[tuple[str, str]]:
    """The systems told of erasures (`erasure` not `none`): (id, `confirm` or `notify`)."""
    return await repository.told_of_erasures(reader)


async def delivery_states(
    reader: Reader, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], DeliveryState]:
    """Where each (message id, system id) delivery stands, and its system now."""
    return await repository.delivery_states(reader, keys)


async def message_body(reader: Reader, message_id: str) -> dict[str, Any] | None:
    """A stored message's body, until it is cleared."""
    return await repository.message_body(reader, message_id)


async def forget_subject(uow: UnitOfWork, subject_hash: str, keep: Sequence[str] = ()) -> int:
    """Clear every stored body that names the subject, but those of the `keep` types: a message
    that was still to be sent is `exhausted` and can no longer be sent. How many were cleared."""
    return await repository.forget_subjects(uow, [subject_hash], keep)


async def forget_subjects(
    uow: UnitOfWork, subject_hashes: Sequence[str], keep: Sequence[str] = ()
) -> int:
    """forget_subject for several subjects at once."""
    return await repository.forget_subjects(uow, subject_hashes, keep)


def pg_statement_part(
    message_id: str,
    message_type: str,
    subject_hash: str,
    body: str,
    at: str,
    after: str | None = None,
) -> str:
    """Common table expressions that store a message inside another PostgreSQL statement.

    The arguments name the statement's `$n` parameter of each value (the body as JSON text).
    A change written in one round trip announces itself in the same one; with no subscriber,
    nothing is stored, nor when `after` (an expression of the statement returning the change
    it made) returns no row.
    """
    return repository.announce_pg(message_id, message_type, subject_hash, body, at, after)


# What wakes this process's delivery worker when a message it could send has committed.
_bells: list[Callable[[], None]] = []


def on_announce(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` whenever a unit of work that stored a message commits; returns its undo."""
    _bells.append(callback)
    return lambda: _bells.remove(callback)


def ring_on_commit(uow: UnitOfWork) -> None:
    """Wake the delivery worker once this unit of work commits."""
    if _bells:
        uow.on_commit(_ring)


def _ring() -> None:
    for bell in list(_bells):
        bell()
