"""Least recently used out: the bookkeeping of every bounded map a process keeps in memory."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def keep_recent(entries: OrderedDict[K, V], key: K, value: V, size: int) -> None:
    """Keep `value` at `key` as the most recently used, dropping the least recent past `size`
    (at size 0, nothing stays)."""
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > size:
        entries.popitem(last=False)
