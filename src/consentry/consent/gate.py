"""A subject's consent as the events rule reads it: since when each category has been granted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consentry.policy import REQUIRED_CATEGORY


@dataclass(frozen=True)
class Gate:
    """What decides whether a subject's events are kept."""

    # Categories granted now, each with the moment its unbroken grant began.
    granted_since: dict[str, datetime] = field(default_factory=dict)
    erased: bool = False

    def allows(self, category: str, occurred_at: datetime) -> bool:
        """The rule: `necessary` passes, or a category granted without a break since then.

        An erased subject allows nothing. Bulk decisions ask it about a use happening now.
        """
        if self.erased:
            return False
        if category == REQUIRED_CATEGORY:
            return True
        since = self.granted_since.get(category)
        return since is not None and since <= occurred_at


# A subject with no recorded choice: only `necessary` passes (the opt_in defaults, fail closed).
NO_RECORD = Gate()
# A subject whose tombstone exists: nothing passes, nothing is stored.
ERASED = Gate(erased=True)


def gate_of(categories: dict[str, Any]) -> Gate:
    """The gate of a state row's `categories` document."""
    return Gate(
        granted_since={
            category: datetime.fromisoformat(entry["updated_at"])
            for category, entry in categories.items()
            if entry["granted"]
        }
    )
