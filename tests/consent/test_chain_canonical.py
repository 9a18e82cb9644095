"""The canonical JSON that chains history records: the README's bytes, whatever a record holds."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentry.consent.chain import HASHED_FIELDS, LINKED_FROM, canonical_json


def _readme(record: dict[str, Any], fields: tuple[str, ...]) -> bytes:
    """The canonical JSON exactly as the README defines it for clients that verify a chain."""
    hashed = {name: record[name] for name in fields}
    if record.get(LINKED_FROM) is not None:
        hashed[LINKED_FROM] = record[LINKED_FROM]
    return json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# Any text but lone surrogates (tested below): control characters, quotes, backslashes,
# non-BMP characters and the line separators JavaScript minds.
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_SCALARS = (
    _TEXT
    | st.booleans()
    | st.none()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)
_FIELDS = (*HASHED_FIELDS, LINKED_FROM)


@settings(max_examples=400, deadline=None, database=None)
@given(st.fixed_dictionaries(dict.fromkeys(_FIELDS, _VALUES)))
def test_any_record_hashes_the_readmes_bytes(record: dict[str, Any]) -> None:
    assert canonical_json(record) == _readme(record, HASHED_FIELDS)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.uuids().map(str),
            "recorded_at": st.just("2026-12-07T03:30:00.123456Z"),
            "categories": st.fixed_dictionaries(
                {c: st.booleans() for c in ("necessary", "performance", "functional")}
            ),
            "changed": st.lists(st.sampled_from(("performance", "functional")), max_size=2),
            "source": st.sampled_from(("banner", "api", "notice")),
            "method": st.none() | st.just("custom"),
            "actor": _TEXT,
            "policy_version": _TEXT,
            "region": st.none() | st.just("DE"),
            "language": st.none() | _TEXT,
            "gpc": st.booleans(),
            LINKED_FROM: st.none() | st.just(f"anon:{uuid.uuid4()}"),
        }
    )
)
def test_a_consent_record_hashes_the_readmes_bytes(record: dict[str, Any]) -> None:
    assert canonical_json(record) == _readme(record, HASHED_FIELDS)


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        1e16,
        float("nan"),
        2**64,
        {1: "a"},
        {None: "a"},
        [[[[[[[[[["deep"]]]]]]]]]],
        '\u2028\u2029\x00\x1f\x7f"\\/',
    ],
)
def test_values_the_fast_path_leaves_alone_give_the_same_bytes(value: Any) -> None:
    record = dict.fromkeys(HASHED_FIELDS, value)
    assert canonical_json(record) == _readme(record, HASHED_FIELDS)


def test_a_lone_surrogate_is_refused_as_before() -> None:
    record = dict.fromkeys(HASHED_FIELDS, "\ud800")
    with pytest.raises(UnicodeEncodeError):
        _readme(record, HASHED_FIELDS)
    with pytest.raises(UnicodeEncodeError):
        canonical_json(record)


def test_another_chains_fields() -> None:
    record = {"id": "x", "scopes": ["a", "b"], "status": "granted", LINKED_FROM: None}
    assert canonical_json(record, ("id", "scopes", "status")) == _readme(
        record, ("id", "scopes", "status")
    )
