"""Timestamps as the contract writes them: RFC 3339 text with an offset, never a number."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator


def _rfc3339_only(value: Any) -> Any:
    # Lax mode would take a number, or text holding one ("0.5"), as a Unix time. A date comes
    # first in RFC 3339 ("2026-11-28T..."), which no number has; pydantic checks the rest. This
    # runs for every event of a batch, hence the index test rather than a regular expression.
    if not isinstance(value, str) or len(value) < 16 or value[4] != "-":
        raise ValueError("must be an RFC 3339 timestamp with an offset")
    return value


def in_utc(moment: datetime) -> datetime:
    """`moment` in UTC; ValueError when that falls outside the years 1-9999."""
    # 0001-01-01T00:00:00+14:00 is a valid text whose UTC lies before year 1: Python cannot
    # represent it, and every statement binding it would fail with an OverflowError.
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall within the years 1-9999 once converted to UTC") from None


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(in_utc)]
