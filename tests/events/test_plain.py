"""The plainly-valid fast path takes only events the schema takes, and reads them alike."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from consentry.events.plain import PlainEvent, plain_event, schema_reading

_VALID = {
    "event_id": "7d9a3c1e-5b2f-4e8a-9c6d-0f1e2d3c4b5a",
    "subject_id": "u-123",
    "category": "performance",
    "name": "lesson.viewed",
    "occurred_at": "2026-12-01T09:30:00Z",
    "properties": {"course_id": "bio-101"},
    "context": {},
}


def _schema_reads(raw: Any) -> PlainEvent | None:
    try:
        return schema_reading(raw)
    except ValidationError:
        return None


def _digits(low: int, high: int, width: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: str(n).zfill(width))


# Timestamps near the one spelling the fast path takes, and many that are not quite it.
_TIMESTAMPS = st.one_of(
    st.builds(
        lambda *parts: "".join(parts),
        _digits(0, 9999, 4),
        st.sampled_from(["-", "/"]),
        _digits(0, 13, 2),
        st.just("-"),
        _digits(0, 32, 2),
        st.sampled_from(["T", "t", " "]),
        _digits(0, 25, 2),
        st.just(":"),
        _digits(0, 61, 2),
        st.just(":"),
        _digits(0, 61, 2),
        st.sampled_from(["", ".", ".5", ".123456", ".1234567", ",5"]),
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+14:00", "-23:59", "+24:00", "+0530"]),
        st.sampled_from(["", "\n", " "]),
    ),
    st.text(max_size=40),
    st.integers(),
    st.none(),
)
_TEXT = st.one_of(st.text(max_size=300), st.integers(), st.none())
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(
            st.uuids().map(str),
            st.uuids().map(lambda u: str(u).upper()),
            st.uuids().map(lambda u: str(u) + "\n"),
            st.uuids().map(lambda u: u.hex),
            _TEXT,
        ),
        "subject_id": st.one_of(
            st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,260}", fullmatch=True),
            st.just("u-1\n"),
            _TEXT,
        ),
        "category": st.one_of(st.sampled_from(["performance", "c" * 64, "c" * 65]), _TEXT),
        "name": st.one_of(st.sampled_from(["", "n" * 128, "n" * 129, "a\x00b"]), _TEXT),
        "occurred_at": _TIMESTAMPS,
        "properties": st.one_of(
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
            st.just({1: "x"}),
            st.lists(st.integers(), max_size=2),
            st.none(),
        ),
        "context": st.one_of(st.just({}), st.just({"a": {"b": [1]}}), st.text(max_size=3)),
        "extra": st.integers(),
    },
)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        _FIELDS,
        _FIELDS.map(lambda fields: {**_VALID, **fields}),
        st.builds(lambda stamp: {**_VALID, "occurred_at": stamp}, _TIMESTAMPS),
    )
)
def test_what_the_fast_path_takes_the_schema_takes_alike(raw: dict[str, Any]) -> None:
    taken = plain_event(raw)
    if taken is not None:
        assert taken == _schema_reads(raw)


def test_the_common_event_takes_the_fast_path() -> None:
    for stamp in (
        "2026-12-01T09:30:00Z",
        "2026-12-01T09:30:00.123Z",
        "2026-12-01T09:30:00.123456+05:30",
        "2026-12-01T09:30:00-08:00",
    ):
        event = {**_VALID, "occurred_at": stamp}
        assert plain_event(event) == _schema_reads(event)
        assert plain_event(event) is not None
    without_objects = {k: v for k, v in _VALID.items() if k not in ("properties", "context")}
    assert plain_event(without_objects) == _schema_reads(without_objects)
