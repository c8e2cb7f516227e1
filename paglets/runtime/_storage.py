"""Managed persistent storage of a host: one ``ManagedStorage`` per paglet class and quota.

Paglets of one class share a directory under ``<persistence_dir>/storage/``. The host
keeps the storage objects (which track the quota) and its paglet processes use them through host calls
(``Storage*`` requests), so a quota holds across all processes of a class.
"""

from __future__ import annotations

import threading
from pathlib import Path

from paglets.persistence.storage import ManagedStorage, class_storage_name

__all__ = ["StorageShelf"]


class StorageShelf:
    """The host's storages (see the module docstring); usable from any thread."""

    def __init__(self, root: Path, default_quota: int | None) -> None:
        self._root = root
        self._default_quota = default_quota
        self._storages: dict[tuple[str, int | None], ManagedStorage] = {}
        self._lock = threading.Lock()

    def storage(self, agent_class: str, quota_bytes: int | None = None) -> ManagedStorage:
        """The storage of ``agent_class`` (``quota_bytes`` ``None``: the host's default quota)."""
        quota = quota_bytes if quota_bytes is not None else self._default_quota
        key = (agent_class, quota)
        with self._lock:
            storage = self._storages.get(key)
            if storage is None:
                storage = ManagedStorage(self._root / class_storage_name(agent_class), quota_bytes=quota)
                self._storages[key] = storage
            return storage
