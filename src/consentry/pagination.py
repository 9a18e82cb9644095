"""Limit and opaque cursor of every list the service returns."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Query

from consentry.errors import ValidationFailed
from consentry.text import StorableText, is_storable
from consentry.timestamps import in_utc

DEFAULT_LIMIT = 100
# Version 1 cursors were unsigned; a position inside one is no longer taken on trust.
_CURSOR_VERSION = 2
# Positions are database integers; a larger number cannot come from this service.
_MAX_POSITION = 2**31 - 1
# Text in a position is an id the service wrote: none is longer.
_MAX_TEXT = 256
# 128 bits of HMAC-SHA256: forging one is as hard as guessing a random 128-bit key.
_SIGNATURE_BYTES = 16
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

NEXT_CURSOR_DESCRIPTION = "Pass it as `?cursor=` for the next page; null on the last page."
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page, 1-1000.")]
Cursor = Annotated[
    StorableText | None,
    Query(max_length=512, description="The `next_cursor` of the previous page."),
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Cursors:
    """Opaque cursors signed with a key every replica shares, so each takes another's.

    A cursor is the base64url JSON of a position, a dot, and a truncated HMAC-SHA256 over the
    list's name and that text: one the service did not issue, or issued for another list, is
    refused before anything in it reaches a statement.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _signature(self, kind: str, payload: str) -> str:
        mac = hmac.new(self._key, f"{kind}.{payload}".encode(), hashlib.sha256).digest()
        return _b64(mac[:_SIGNATURE_BYTES])

    def encode(self, kind: str, position: dict[str, Any]) -> str:
        """A cursor for a position in the list named `kind`."""
        payload = _b64(orjson.dumps({"v": _CURSOR_VERSION, **position}))
        return f"{payload}.{self._signature(kind, payload)}"

    def decode(self, kind: str, cursor: str, expected: dict[str, type]) -> dict[str, Any]:
        """The position inside a cursor this service issued for `kind`; 422 for anything else."""
        if not _SHAPE.fullmatch(cursor):
            raise invalid_cursor()
        payload, signature = cursor.split(".")
        # Both are ASCII here, so the comparison takes the same time wherever they differ.
        if not hmac.compare_digest(signature, self._signature(kind, payload)):
            raise invalid_cursor()
        try:
            position = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            raise invalid_cursor() from None
        if not isinstance(position, dict) or position.pop("v", None) != _CURSOR_VERSION:
            raise invalid_cursor()
        if position.keys() != expected.keys():
            raise invalid_cursor()
        for key, kind_of_value in expected.items():
            if not _fits(position[key], kind_of_value):
                raise invalid_cursor()
        return position

    def encode_time(self, kind: str, moment: str, identifier: str) -> str:
        """A cursor for a list ordered by a timestamp (as the service writes it) and then an id."""
        return self.encode(kind, {"t": moment, "id": identifier})

    def decode_time(self, kind: str, cursor: str) -> tuple[datetime, str]:
        """The (timestamp in UTC, id) position inside a cursor of `encode_time`; 422 otherwise."""
        position = self.decode(kind, cursor, {"t": str, "id": str})
        try:
            moment = datetime.fromisoformat(position["t"])
            if moment.tzinfo is None:
                raise ValueError("no offset")
            return in_utc(moment), position["id"]
        except ValueError:
            raise invalid_cursor() from None


def _fits(value: Any, kind: type) -> bool:
    """Whether a position's value has its type and could be stored: checked even though signed."""
    if type(value) is not kind:
        return False
    if isinstance(value, int):
        return 0 <= value <= _MAX_POSITION
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT and is_storable(value)
    return True


def invalid_cursor() -> ValidationFailed:
    """The answer to a cursor this service did not issue."""
    return ValidationFailed(
        "The cursor was not issued by this service.",
        errors=[{"loc": ["query", "cursor"], "msg": "unknown cursor", "type": "cursor_invalid"}],
    )
