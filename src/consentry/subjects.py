"""Subject ids: opaque platform user ids, or `anon:<uuid4>` for anonymous visitors."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path

SUBJECT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+\-]{0,255}$"
_SUBJECT_ID = re.compile(SUBJECT_ID_PATTERN)
# The random id is the visitor's only capability, so only a real version-4 UUID qualifies.
ANONYMOUS_PATTERN = r"^anon:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_ANONYMOUS = re.compile(ANONYMOUS_PATTERN)


def is_subject_id(value: str) -> bool:
    """Whether `value` is a well-formed subject id."""
    return _SUBJECT_ID.fullmatch(value) is not None


def is_anonymous(subject_id: str) -> bool:
    """Whether the subject is an anonymous visitor's `anon:<uuid4>`."""
    return _ANONYMOUS.fullmatch(subject_id) is not None


SUBJECT_ID_DESCRIPTION = "A platform user id, or `anon:<uuid4>` for an anonymous visitor."
SubjectIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        pattern=SUBJECT_ID_PATTERN,
        description=SUBJECT_ID_DESCRIPTION,
    ),
]
