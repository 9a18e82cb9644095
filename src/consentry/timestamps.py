"""Timestamps as the contract writes them: RFC 3339 text with an offset, never a number."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339_only(value: Any) -> Any:
    # Lax mode would take a number, or text holding one ("0.5"), as a Unix time.
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]
