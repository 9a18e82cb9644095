"""How many exports one process runs at once, in all and per subject; past either, a refusal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from consentry.errors import RateLimited, ServiceUnavailable

# Whole seconds a refused client is asked to wait: about what a typical export takes.
RETRY_AFTER_SECONDS = 5


class ExportSlots:
    """Counters of the exports under way; taken without waiting, so a refusal comes at once.

    An export holds its slot until its last byte is sent or the stream is cut, which bounds
    the memory the read-ahead of all exports can take, and how many database connections
    exports can hold at the same time.
    """

    def __init__(self, total: int, per_subject: int) -> None:
        self._total = total
        self._per_subject = per_subject
        self._running: Counter[str] = Counter()
        self._count = 0

    def take(self, subject_id: str) -> Callable[[], None]:
        """A slot for an export of `subject_id`, and the function that gives it back (once)."""
        if self._running[subject_id] >= self._per_subject:
            raise RateLimited(
                "This subject's exports already under way are as many as allowed; "
                "try again once one has finished.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if self._count >= self._total:
            raise ServiceUnavailable("Too many exports are under way; try again shortly.")
        self._running[subject_id] += 1
        self._count += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._count -= 1
            self._running[subject_id] -= 1
            if self._running[subject_id] <= 0:
                del self._running[subject_id]  # the table holds only subjects under way

        return release

    def __len__(self) -> int:
        return self._count
