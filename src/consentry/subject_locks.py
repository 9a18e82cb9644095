"""The lock that keeps an erasure and every writer of the same subject's data apart.

Erasure and every writer of a subject's data exclude each other with PostgreSQL advisory locks
on one of a few buckets of subjects: writers share their buckets' locks, erasure takes its
bucket's alone. Row locks cannot do it, since a subject with no consent row has none to lock,
and a writer that committed after an erasure would leave the erased id behind. Few buckets keep
a batch of 100 subjects at a few locks; an erasure pauses a sixteenth of the writers for the
milliseconds it takes. On SQLite, BEGIN IMMEDIATE already makes every writer the only one.

A statement about one subject can take its writer's lock itself (`shared_first`), saving the
round trip of a statement of its own.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from sqlalchemy import TextClause, text

from consentry.db import UnitOfWork

LOCK_SPACE = 0x436F6E73
BUCKETS = 16
# The buckets are written into the statement (numbers computed here, never input): without
# parameters, a transaction's first statement goes with BEGIN in one round trip.
_SHARE = (
    "SELECT pg_advisory_xact_lock_shared({space}, bucket)"
    " FROM unnest('{{{buckets}}}'::int[]) AS bucket"
)
_TAKE = "SELECT pg_advisory_xact_lock($1, $2)"


def bucket(subject_id: str) -> int:
    """The advisory-lock bucket of a subject."""
    return zlib.crc32(subject_id.encode()) % BUCKETS


def pg_shared_first(space: str, bucket: str) -> str:
    """A PostgreSQL condition that shares a subject's lock before its statement reads any row.

    `space` and `bucket` name the statement's parameters of `lock_arguments`. The condition
    names no column, so PostgreSQL evaluates it once, before the scan (a one-time filter): no
    row is locked before the subject's lock, the order erasure takes them in. The statement's
    snapshot is older than the lock, though, and may predate an erasure that committed while
    it waited: only a row it locks or updates is seen as it stands then. So it must find the
    subject through its consent row, which erasure deletes (a locked row gone means erased).
    """
    return f"(SELECT pg_advisory_xact_lock_shared({space}, {bucket})) IS NOT NULL"


def shared_first() -> TextClause:
    """`pg_shared_first` as a Core condition, its parameters named as `lock_params` names them."""
    return text(pg_shared_first(":lock_space", ":lock_bucket"))


def lock_arguments(subject_id: str) -> tuple[int, int]:
    """The values of `pg_shared_first`'s two parameters for this subject."""
    return LOCK_SPACE, bucket(subject_id)


def lock_params(subject_id: str) -> dict[str, int]:
    """The values of `shared_first`'s parameters for this subject."""
    space, subject_bucket = lock_arguments(subject_id)
    return {"lock_space": space, "lock_bucket": subject_bucket}


async def share(uow: UnitOfWork, subject_ids: Iterable[str]) -> None:
    """Keep erasure of these subjects out until the transaction ends (buckets in order)."""
    if uow.dialect == "postgresql":
        buckets = sorted({bucket(subject_id) for subject_id in subject_ids})
        listed = ",".join(str(number) for number in buckets)
        await uow.pg_begin_with(_SHARE.format(space=LOCK_SPACE, buckets=listed))


async def take(uow: UnitOfWork, subject_id: str) -> None:
    """Wait until no writer holds the subject's bucket, then keep them all out."""
    if uow.dialect == "postgresql":
        await uow.pg_execute(_TAKE, LOCK_SPACE, bucket(subject_id))
