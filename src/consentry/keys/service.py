"""Creating, listing and revoking API keys."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable
from typing import Any

from consentry.audit import service as audit
from consentry.db import Reader, UnitOfWork, format_timestamp, utcnow
from consentry.errors import Conflict, NotFound, ValidationFailed
from consentry.keys import repository
from consentry.keys.format import KEY_PREFIX, SCOPES, hash_key
from consentry.keys.repository import StoredKey

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Names of the actors other than keys in the consent history and the audit log: a key named so
# would write records indistinguishable from the learner's own choice or the service's own work.
RESERVED_NAMES = ("admin", "subject", "worker", "cli")
RESERVED_PREFIX = "system:"


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


async def revoke_key(uow: UnitOfWork, name: str, *, actor: str = "cli") -> None:
    """Revoke the named key at once, audited."""
    if not await repository.revoke(uow, name, utcnow()):
        raise NotFound(f"No active key named {name!r}.")
    await audit.record(uow, "key_revoked", actor, target=name)
