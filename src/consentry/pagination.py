"""Limit and opaque cursor of every list the service returns."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from consentry.errors import ValidationFailed

DEFAULT_LIMIT = 100
_CURSOR_VERSION = 1
# Positions are database integers; a larger number cannot come from this service.
_MAX_POSITION = 2**31 - 1

Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page, 1-1000.")]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="The `next_cursor` of the previous page."),
]


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for a position in a list."""
    payload = orjson.dumps({"v": _CURSOR_VERSION, **position})
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(cursor: str, expected: dict[str, type]) -> dict[str, Any]:
    """The position inside a cursor this service issued; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid_cursor() from None
    if not isinstance(position, dict) or position.pop("v", None) != _CURSOR_VERSION:
        raise invalid_cursor()
    if position.keys() != expected.keys():
        raise invalid_cursor()
    for key, kind in expected.items():
        value = position[key]
        if type(value) is not kind or (isinstance(value, int) and not 0 <= value <= _MAX_POSITION):
            raise invalid_cursor()
    return position


def invalid_cursor() -> ValidationFailed:
    """The answer to a cursor this service did not issue."""
    return ValidationFailed(
        "The cursor was not issued by this service.",
        errors=[{"loc": ["query", "cursor"], "msg": "unknown cursor", "type": "cursor_invalid"}],
    )


def encode_time_cursor(moment: str, identifier: str) -> str:
    """A cursor for a list ordered by a timestamp (as the service writes it) and then an id."""
    return encode_cursor({"t": moment, "id": identifier})


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, id) position inside a cursor of `encode_time_cursor`; 422 otherwise."""
    position = decode_cursor(cursor, {"t": str, "id": str})
    try:
        moment = datetime.fromisoformat(position["t"])
    except ValueError:
        raise invalid_cursor() from None
    if moment.tzinfo is None:
        raise invalid_cursor()
    return moment, position["id"]
