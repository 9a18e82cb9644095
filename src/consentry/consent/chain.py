"""The canonical form of a history record and the hash that chains records together."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

# Every field of a record but `subject_id`, `ip` and `user_agent`, which erasure removes:
# a pseudonymised chain must still verify.
HASHED_FIELDS = (
    "id",
    "recorded_at",
    "categories",
    "changed",
    "source",
    "method",
    "actor",
    "policy_version",
    "region",
    "language",
    "gpc",
)
# Hashed only on the records that carry it (a learner's record that carried an anonymous
# visitor's choice over), so every chain written before it existed verifies as it did.
LINKED_FROM = "linked_from"


def canonical_json(record: Mapping[str, Any], fields: Sequence[str] = HASHED_FIELDS) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that are hashed (the README spells this out)."""
    hashed = {name: record[name] for name in fields}
    if record.get(LINKED_FROM) is not None:
        hashed[LINKED_FROM] = record[LINKED_FROM]
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def record_hash(
    prev_hash: str | None, record: Mapping[str, Any], fields: Sequence[str] = HASHED_FIELDS
) -> str:
    """SHA-256 over the previous hash (empty for the first record) and the canonical JSON.

    `fields` are those of a consent record unless another chain (integrations) names its own.
    """
    return hashlib.sha256((prev_hash or "").encode() + canonical_json(record, fields)).hexdigest()
