"""The lock that keeps an erasure and every writer of the same subject's data apart.

Erasure and every writer of a subject's data exclude each other with PostgreSQL advisory locks
on one of a few buckets of subjects: writers share their buckets' locks, erasure takes its
bucket's alone. Row locks cannot do it, since a subject with no consent row has none to lock,
and a writer that committed after an erasure would leave the erased id behind. Few buckets keep
a batch of 100 subjects at a few locks; an erasure pauses a sixteenth of the writers for the
milliseconds it takes. On SQLite, BEGIN IMMEDIATE already makes every writer the only one.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

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
