"""Creating, listing and revoking API keys."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

from consentry.audit import service as audit
from consentry.db import Database, Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from consentry.keys import repository
from consentry.keys.cache import LISTENER_NAME
from consentry.keys.format import KEY_PREFIX, SCOPES, hash_key
from consentry.keys.repository import StoredKey

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Names of the actors other than keys in the consent history and the audit log: a key named so
# would write records indistinguishable from the learner's own choice or the service's own work.
RESERVED_NAMES = ("admin", "subject", "worker", "cli")
RESERVED_PREFIX = "system:"
# How long a revocation waits for the processes that keep keys to say they dropped them.
_ANSWER_SECONDS = 5.0
_REVOKER_NAME = "consentry-keys-revoker"

log = logging.getLogger(__name__)


def is_reserved(name: str) -> bool:
    """Whether a key name is an actor's name, in any case: a reader would not tell them apart."""
    folded = name.lower()
    return folded in RESERVED_NAMES or folded.startswith(RESERVED_PREFIX)


async def create_key(
    uow: UnitOfWork, name: str, scopes: Iterable[str], *, actor: str = "cli"
) -> tuple[str, StoredKey]:
    """Make a key, audited; the plaintext is returned once and never stored."""
    wanted = sorted(set(scopes))
    if is_reserved(name):
        raise ValidationFailed(
            f"The key name {name!r} is reserved: {', '.join(RESERVED_NAMES)} and "
            f"{RESERVED_PREFIX}* name actors in the consent history and the audit log."
        )
    if not _NAME.fullmatch(name):
        raise ValidationFailed("A key name is 1-64 letters, digits, '.', '_' or '-'.")
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise ValidationFailed(f"Scopes must be among {', '.join(SCOPES)}.")
    if await repository.name_taken(uow, name):
        raise Conflict(f"A key named {name!r} already exists.")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = StoredKey(
        id=str(uuid.uuid4()),
        name=name,
        prefix=plaintext[:10],
        scopes=wanted,
        created_at=utcnow(),
        revoked_at=None,
    )
    await repository.add(uow, key, hash_key(plaintext))
    await audit.record(uow, "key_created", actor, target=name, details={"scopes": wanted})
    return plaintext, key


async def list_keys(reader: Reader) -> list[StoredKey]:
    """Every key with its scopes and state, never the key itself."""
    return await repository.list_all(reader)


def represent(key: StoredKey) -> dict[str, Any]:
    """A stored key as `consentry keys list --json` shows it."""
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "created_at": format_timestamp(key.created_at),
        "revoked_at": format_timestamp(key.revoked_at) if key.revoked_at else None,
    }


async def revoke_key(uow: UnitOfWork, name: str, *, actor: str = "cli", notice: str = "") -> None:
    """Revoke the named key, audited; `notice` is what the processes that keep keys answer."""
    if not await repository.revoke(uow, name, utcnow(), notice):
        raise NotFound(f"No active key named {name!r}.")
    await audit.record(uow, "key_revoked", actor, target=name)


async def revoke_everywhere(
    database: Database, name: str, *, actor: str = "cli", wait: float = _ANSWER_SECONDS
) -> None:
    """Revoke the named key, and return once every process that keeps keys has dropped it.

    Each such process listens for revocations (keys/cache.py) and answers this one's notice
    once it has dropped what it kept. The processes are counted before the revocation commits;
    one that does not answer within `wait` seconds (gone, or cut off: its cache is then off) is
    logged, and the revocation stands.
    """
    if not database.announces_changes:
        async with database.unit_of_work() as uow:
            await revoke_key(uow, name, actor=actor)
        return
    notice = uuid.uuid4().hex
    answers = 0
    all_answered = asyncio.Event()
    expected = 0

    def heard(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        nonlocal answers
        if payload == notice:
            answers += 1
            if answers >= expected:
                all_answered.set()

    try:
        connection = await database.listener(_REVOKER_NAME)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise ServiceUnavailable() from error
    try:
        await connection.add_listener(repository.HEARD_CHANNEL, heard)
        expected = await repository.sessions(connection, LISTENER_NAME)
        async with database.unit_of_work() as uow:
            await revoke_key(uow, name, actor=actor, notice=notice)
        if expected:
            try:
                await asyncio.wait_for(all_answered.wait(), wait)
            except TimeoutError:
                log.warning(
                    "key %r revoked; %d of %d processes did not confirm in time",
                    name,
                    expected - answers,
                    expected,
                )
    finally:
        connection.terminate()
