"""Creating, listing and revoking API keys."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from consentry.audit import service as audit
from consentry.db import utcnow
from consentry.errors import Conflict, NotFound, ValidationFailed
from consentry.keys import repository
from consentry.keys.models import ApiKey

KEY_PREFIX = "csk_"
SCOPES = ("consent:read", "consent:write", "events:write", "privacy:admin")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Names of the actors other than keys in the consent history and the audit log: a key named so
# would write records indistinguishable from the learner's own choice or the service's own work.
RESERVED_NAMES = ("admin", "subject", "worker", "cli")
RESERVED_PREFIX = "system:"


def is_reserved(name: str) -> bool:
    """Whether a key name is an actor's name, in any case: a reader would not tell them apart."""
    folded = name.lower()
    return folded in RESERVED_NAMES or folded.startswith(RESERVED_PREFIX)


def hash_key(key: str) -> str:
    """The SHA-256 under which a key is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    session: AsyncSession, name: str, scopes: Iterable[str], *, actor: str = "cli"
) -> tuple[str, ApiKey]:
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
    if await repository.name_taken(session, name):
        raise Conflict(f"A key named {name!r} already exists.")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=str(uuid.uuid4()),
        name=name,
        key_hash=hash_key(plaintext),
        prefix=plaintext[:10],
        scopes=wanted,
        created_at=utcnow(),
    )
    repository.add(session, key)
    await audit.record(session, "key_created", actor, target=name, details={"scopes": wanted})
    return plaintext, key


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    """Every key with its scopes and state, never the key itself."""
    return await repository.list_all(session)


async def revoke_key(session: AsyncSession, name: str, *, actor: str = "cli") -> None:
    """Revoke the named key at once, audited."""
    if not await repository.revoke(session, name, utcnow()):
        raise NotFound(f"No active key named {name!r}.")
    await audit.record(session, "key_revoked", actor, target=name)
