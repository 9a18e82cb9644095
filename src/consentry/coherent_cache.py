"""What a process keeps in memory of the database, coherent across replicas through PostgreSQL.

Every change of something kept notifies a channel in its own transaction, so PostgreSQL tells
every listening process when, and only when, the change commits; each process listens on one
connection of its own and drops what it heard of. While that connection is down the cache is off
and empty: a change it cannot hear about must never be served from memory. Recorded consent,
learners' connections and active API keys are kept this way.

A process may keep what it has just committed itself (`keep_own`). A notice names the server
process that sent it, the one that ran the commit; PostgreSQL delivers notices in commit order,
and the server process is this one's own until the value is kept. So the commit's own notice is
told apart from any other: heard before the value is kept, it does not stop the keeping; heard
after, it does not drop it. Any other notice for the key does. A value kept so is never older
than a change whose notice was heard.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import asyncpg

from consentry.listening import keep_listening
from consentry.recent import keep_recent

V = TypeVar("V")

# What a notice names to drop every entry (a catalogue change, a revoked key).
EVERYONE = ""
# How many recent changes a read that overlapped them can check itself against.
_RECENT_CHANGES = 4096
# Who made a change counted: a notice's sending server process (its pid), or this process;
# or the notice of a commit this process kept, heard as owed (an older commit than any since).
_HERE = 0
_OWED = -1


class CoherentCache(Generic[V]):
    """Values by key, least recently used out, kept only while every change can be heard."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, V] = OrderedDict()
        # Counts changes heard; a read that began before a change to its key must not fill.
        self._epoch = 0
        self._recent: deque[tuple[str, int]] = deque(maxlen=_RECENT_CHANGES)
        # The epoch of each key's latest change among the recent ones: most checks end here,
        # without a walk through every change since.
        self._latest: dict[str, int] = {}
        # Keys kept by keep_own whose own notices are still to be heard: how many, by sender.
        self._owed: dict[str, dict[int, int]] = {}
        self.listening = False

    @property
    def epoch(self) -> int:
        """The number of changes heard so far: take it before reading the database."""
        return self._epoch

    def get(self, key: str) -> tuple[bool, V | None]:
        """Whether `key` is kept, and its value if so (a kept value may itself be None)."""
        if not self.listening:
            return False, None
        try:
            value = self._entries[key]
        except KeyError:
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def fill(self, key: str, value: V, epoch: int) -> None:
        """Keep what a read found, unless `key` changed since `epoch` or nothing listens."""
        if not self.listening or self._size == 0:
            return
        if not self._changes_since(key, epoch):
            self._keep(key, value)

    def keep_own(self, key: str, value: V, epoch: int, sender: int) -> None:
        """Keep `value`, just committed for `key` by this process through the server process
        `sender` (still its own), unless another change to `key` was heard since `epoch`, taken
        before the statement that committed it; otherwise drop `key`.

        The commit's own notice, heard already or still to come, does not drop it (`heard`).
        """
        if not self.listening or self._size == 0:
            return
        senders = [heard for heard in self._changes_since(key, epoch) if heard != _OWED]
        if sender == _HERE or any(heard != sender for heard in senders):
            self.forget(key)
            return
        self._changed(key, _HERE)  # a read begun before this commit must not fill over it
        if not senders:  # its own notice is still to come
            owed = self._owed.setdefault(key, {})
            owed[sender] = owed.get(sender, 0) + 1
        self._keep(key, value)

    def heard(self, key: str, sender: int) -> None:
        """A notice from the server process `sender` of a committed change to `key` (or to every
        key): drop it, unless it is the notice of a change this process kept (`keep_own`)."""
        owed = self._owed.get(key)
        if not owed or sender not in owed:
            self.forget(key, sender)
            return
        owed[sender] -= 1
        if not owed[sender]:
            del owed[sender]
            if not owed:
                del self._owed[key]
        self._changed(key, _OWED)

    def forget(self, key: str, sender: int = _HERE) -> None:
        """Drop a key that changed, or every key (EVERYONE)."""
        self._changed(key, sender)
        if key == EVERYONE:
            self._entries.clear()
            self._owed.clear()
        else:
            self._entries.pop(key, None)
            self._owed.pop(key, None)

    def _keep(self, key: str, value: V) -> None:
        keep_recent(self._entries, key, value, self._size)

    def _changed(self, key: str, sender: int) -> None:
        """Count a change to `key`, so that a read that overlapped it does not fill."""
        self._epoch += 1
        self._recent.append((key, sender))
        self._latest[key] = self._epoch
        if len(self._latest) > 2 * _RECENT_CHANGES:
            # What is older than the recent changes, no check looks at (it counts as too many).
            oldest = self._epoch - _RECENT_CHANGES
            self._latest = {kept: at for kept, at in self._latest.items() if at > oldest}

    def _changes_since(self, key: str, epoch: int) -> list[int]:
        """Who changed `key`, or every key, since `epoch`; too many changes to check count as
        one made here."""
        missed = self._epoch - epoch
        if not missed:
            return []
        if missed > len(self._recent):
            return [_HERE]
        latest = self._latest
        if latest.get(key, 0) <= epoch and latest.get(EVERYONE, 0) <= epoch:
            return []
        return [
            sender
            for changed, sender in itertools.islice(reversed(self._recent), missed)
            if changed in (key, EVERYONE)
        ]

    def start(self) -> None:
        """Listening now: serve from memory again, but nothing kept before, which may have
        missed a change."""
        self.stop()
        self.listening = True

    def stop(self) -> None:
        """Serve nothing from memory until listening again."""
        self.listening = False
        self._epoch += len(self._recent) + 1  # every read under way is now too old to fill
        self._entries.clear()
        self._owed.clear()
        self._latest.clear()


async def keep_coherent(
    cache: CoherentCache[V],
    connect: Callable[[], Awaitable[asyncpg.Connection]],
    channels: Sequence[str],
    *,
    off: str,
    heard: Callable[[str, int], None] | None = None,
) -> None:
    """Keep `cache` listening on `channels` for as long as the task runs; reconnect when lost.

    Each notice's payload is the key it changed (`CoherentCache.heard`), unless `heard` says
    what a notice does.
    """
    await keep_listening(
        connect,
        channels,
        cache.heard if heard is None else heard,
        # Only once listening can no change go unheard; what was kept before may have missed some.
        listening=cache.start,
        lost=cache.stop,
        off=off,
    )
