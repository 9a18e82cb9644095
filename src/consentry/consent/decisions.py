"""Bulk decisions: what many subjects allow now, judged by the event rule, in one read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consentry.consent import repository
from consentry.consent.gate import NO_RECORD
from consentry.db import Reader, utcnow
from consentry.pseudonyms import Pseudonyms


async def decide(
    reader: Reader, pseudonyms: Pseudonyms, subject_ids: list[str], categories: Sequence[str]
) -> list[dict[str, Any]]:
    """One decision per id, in order, as the event rule would judge a use happening now.

    Read from the database in one statement, never from a process's cache: a job deciding for
    thousands of learners must not act on a withdrawal this process has not heard of yet. A
    subject with no record gets the opt_in defaults (only `necessary`); an erased one, nothing.
    """
    unique = list(dict.fromkeys(subject_ids))
    gates = await repository.read_gates(reader, unique, [pseudonyms.of(s) for s in unique])
    now = utcnow()
    asked = list(dict.fromkeys(categories))
    decided: dict[str, dict[str, Any]] = {}
    for subject_id in unique:
        gate = gates.get(subject_id, NO_RECORD)
        decided[subject_id] = {
            "subject_id": subject_id,
            "erased": gate.erased,
            "categories": {category: gate.allows(category, now) for category in asked},
        }
    return [decided[subject_id] for subject_id in subject_ids]
