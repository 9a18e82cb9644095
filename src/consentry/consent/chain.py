"""The canonical form of a history record and the hash that chains records together."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

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
    # orjson writes the README's form byte for byte for what records hold (text, booleans,
    # null, small integers, lists and objects of them) at a tenth of the cost; anything else
    # (a float's digits, say, which the two write differently) takes the README's own call.
    if _plain(hashed, _PLAIN_DEPTH):
        try:
            return orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: refused below, as it always was
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


# Records nest two levels; a value nested deeper than this is left to the json module.
_PLAIN_DEPTH = 8
_INT64 = 1 << 63


def _plain(value: Any, depth: int) -> bool:
    """Whether `value` holds only what orjson and the json module write alike."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_INT64 <= value < _INT64)
    if depth == 0:
        return False
    if kind is dict:
        return all(type(key) is str and _plain(item, depth - 1) for key, item in value.items())
    if kind is list or kind is tuple:
        return all(_plain(item, depth - 1) for item in value)
    return False


def record_hash(
    prev_hash: str | None, record: Mapping[str, Any], fields: Sequence[str] = HASHED_FIELDS
) -> str:
    """SHA-256 over the previous hash (empty for the first record) and the canonical JSON.

    `fields` are those of a consent record unless another chain (integrations) names its own.
    """
    return hashlib.sha256((prev_hash or "").encode() + canonical_json(record, fields)).hexdigest()
