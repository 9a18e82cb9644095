"""Which recorded sources are a subject's own choice: the one place that says so.

A `notice` record (the defaults consent.js applied in an opt_out region) is judged by the event
rule and bulk decisions like any other, but it is not a choice: linking treats a subject whose
records are all notices as having none, and never carries a notice over.
"""

from __future__ import annotations

# Sources of records that are not a choice of the subject.
NOT_A_CHOICE = ("notice",)


def is_choice(source: str) -> bool:
    """Whether a record with this `source` is a choice the subject made."""
    return source not in NOT_A_CHOICE
