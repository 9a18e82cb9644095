"""Text the databases can hold: the one check every query value and cursor field passes."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# PostgreSQL refuses NUL in text (SQLSTATE 22021), and a lone surrogate cannot be encoded as
# UTF-8 for either database: both would fail in the driver, as a 500, after the request was
# accepted.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(value: str) -> bool:
    """Whether both databases can hold `value` as text."""
    return _UNSTORABLE.search(value) is None


def storable(value: str) -> str:
    """`value` unchanged; ValueError when a database could not hold it."""
    if not is_storable(value):
        raise ValueError("must not contain NUL or unpaired surrogates")
    return value


StorableText = Annotated[str, AfterValidator(storable)]
