"""A bounded per-class cache for things built once per state class (codecs, field plans).

Lookups are one ``dict.get`` (hot path: every snapshot asks for its codec). A miss builds the value
under a lock and inserts it; past ``capacity`` entries the oldest insertion is dropped (FIFO), so a
process that keeps defining or reloading classes holds at most ``capacity`` of them alive. A value
whose build raised is not cached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ClassCache"]

V = TypeVar("V")


class ClassCache(Generic[V]):
    __slots__ = ("_build", "_capacity", "_entries", "_lock")

    def __init__(self, build: Callable[[type], V], capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._build = build
        self._capacity = capacity
        self._entries: dict[type, V] = {}
        self._lock = threading.Lock()

    def get(self, cls: type) -> V:
        value = self._entries.get(cls)
        if value is not None:
            return value
        with self._lock:
            value = self._entries.get(cls)
            if value is None:
                value = self._build(cls)
                entries = self._entries
                while len(entries) >= self._capacity:
                    del entries[next(iter(entries))]
                entries[cls] = value
            return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
