"""Path-safe, quota-accounted storage under one directory (docs/implementing/files.md).

A host gives each paglet class a ``ManagedStorage`` rooted at ``<persistence_dir>/storage/<class name>``
(:func:`class_storage_name`; shared by the class's instances, kept across restarts; default quota 10 MiB).

Path rules: a path is relative to the root. It is resolved (``..`` and symbolic links followed) and must
stay strictly inside the root, otherwise ``ValueError``; absolute paths are refused too. Only
``delete`` accepts the root itself (it then empties the storage).

Quota rules: usage is the sum of the sizes of the regular files under the root (symbolic links count
0). It is measured by one directory walk when the storage is created and then kept up to date by every
write and delete made through this object, so a write costs no directory walk. A write that would make
usage exceed ``quota_bytes`` raises ``StorageQuotaError`` and changes nothing; ``quota_bytes=None``
means no quota. Changes made behind the object's back are seen after ``rescan()``. One host should use
one ``ManagedStorage`` per root (two objects on one root each keep their own count).

Durability: ``write_bytes`` writes a temporary file beside the target, fsyncs it, renames it over the
target and fsyncs the directory, so readers see the old or the new content, never a mix, and a crash
leaves no partial file under the target's name. The object is thread-safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Final

from paglets import _oscompat
from paglets.core.errors import StorageQuotaError

__all__ = [
    "DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES",
    "ManagedStorage",
    "StorageQuotaError",
    "StorageStatus",
    "class_storage_name",
    "path_component",
    "sanitize_name",
]

#: Default quota of one class's persistent storage (paglets 2.0's default).
DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES: Final = 10 * 1024 * 1024

_UNSAFE_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9._-]")
_TEMP_SUFFIX: Final = ".paglets-tmp"


def sanitize_name(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``.

    The result is always one safe path component: the names ``""``, ``"."`` and ``".."`` (which would
    not be) become ``"_"``, ``"_"`` and ``"__"``. It is *not* injective (``a:b`` and ``a_b`` give the same
    name): to name a directory or file after an id or a class, use :func:`path_component`.
    """
    safe = _UNSAFE_NAME_CHARS.sub("_", name)
    if safe in ("", ".", ".."):
        return "_" * max(1, len(safe))
    return safe


_SAFE_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
#: Longest component made by escaping; longer ones are a hash (file names are at most 255 bytes).
MAX_PATH_COMPONENT: Final = 200
_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")


def path_component(name: str) -> str:
    """``name`` as one file or directory name, *injectively*: two names never share a path.

    Bytes outside ``[A-Za-z0-9._-]`` of the UTF-8 name are written ``%XX``, a leading ``.`` too (no hidden
    files, no ``.`` or ``..``); a result that would pass ``MAX_PATH_COMPONENT`` characters becomes ``%%``
    and the SHA-256 of the name (escaping never produces ``%%``); ``""`` is ``%``. Names made of those
    characters (uuid hex ids, most class and file names) are their own component, as with
    :func:`sanitize_name`. Record file names (``file_stem``), work directories, registered files and
    class storage directories all use it.
    """
    if _PLAIN_NAME.fullmatch(name):  # fast path: escaping would not change it
        return name
    raw = name.encode("utf-8", "surrogatepass")
    if not raw:
        return "%"
    parts = [chr(b) if b in _SAFE_BYTES else f"%{b:02X}" for b in raw]
    if parts[0] == ".":
        parts[0] = "%2E"
    escaped = "".join(parts)
    if len(escaped) > MAX_PATH_COMPONENT:
        return "%%" + hashlib.sha256(raw).hexdigest()
    return escaped


def class_storage_name(agent_class: str) -> str:
    """The directory of a paglet class's persistent storage (``<sanitized "module.Class">``).

    A top-level class ``pkg.mod:Class`` keeps 2.0's name ``pkg.mod.Class``; a class whose qualified name
    has a dot of its own (a nested class, ``pkg:mod.Class``) keeps its ``:`` (escaped), so the two never
    share a directory. The result goes through :func:`path_component`, so it is injective.
    """
    module, sep, qualname = agent_class.partition(":")
    if sep and "." not in qualname and ":" not in qualname:
        return path_component(f"{module}.{qualname}")
    return path_component(agent_class)


@dataclass(frozen=True, slots=True)
class StorageStatus:
    root: str
    used_bytes: int
    quota_bytes: int | None
    available_bytes: int | None


def _tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (or of ``path`` itself); links are not followed."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if not stat.S_ISDIR(st.st_mode):
        return 0
    total = 0
    for directory, _dirs, files in os.walk(path):
        for file_name in files:
            try:
                entry = os.lstat(os.path.join(directory, file_name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(entry.st_mode):
                total += entry.st_size
    return total


def _fsync_directory(path: Path) -> None:
    if not _oscompat.HAS_DIRECTORY_FSYNC:
        return
    fd = os.open(path, os.O_RDONLY | _oscompat.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ManagedStorage:
    """See the module docstring."""

    def __init__(
        self, root: Path | str, quota_bytes: int | None = DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES
    ) -> None:
        if quota_bytes is not None:
            if isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int):
                raise TypeError("quota_bytes must be an integer or None")
            if quota_bytes < 0:
                raise ValueError("quota_bytes must not be negative")
        self.root: Final = Path(root).expanduser().resolve(strict=False)
        self.quota_bytes: Final = quota_bytes
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        self._used = _tree_size(self.root)

    # --- paths -------------------------------------------------------------------------------------------

    def _resolve(self, path: Path | str, *, allow_root: bool = False) -> Path:
        relative = PurePath(path)
        if relative.is_absolute():
            raise ValueError(f"managed storage paths are relative to the storage root: {str(path)!r}")
        candidate = (self.root / relative).resolve(strict=False)
        if candidate == self.root:
            if allow_root:
                return candidate
            raise ValueError(f"managed storage path names the storage root: {str(path)!r}")
        if not candidate.is_relative_to(self.root):
            raise ValueError(f"managed storage path escapes its root: {str(path)!r}")
        return candidate

    # --- operations --------------------------------------------------------------------------------------

    def read_bytes(self, path: Path | str) -> bytes:
        """The content of a file (``FileNotFoundError`` when it does not exist)."""
        return self._resolve(path).read_bytes()

    def write_bytes(self, path: Path | str, data: bytes | bytearray | memoryview) -> Path:
        """Atomically replace (or create) a file with ``data``; returns its path."""
        target = self._resolve(path)
        view = memoryview(data).cast("B")
        with self._lock:
            old_size = _tree_size(target) if not target.is_dir() else None
            if old_size is None:
                raise IsADirectoryError(f"managed storage path is a directory: {str(path)!r}")
            projected = self._used - old_size + view.nbytes
            if self.quota_bytes is not None and projected > self.quota_bytes:
                raise StorageQuotaError(
                    f"managed storage quota exceeded: {projected} bytes would exceed "
                    f"{self.quota_bytes} bytes (root {self.root})"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            # The directory chain may have been swapped for a link since _resolve: check again.
            if not target.parent.resolve().is_relative_to(self.root):
                raise ValueError(f"managed storage path escapes its root: {str(path)!r}")
            self._write_atomically(target, view)
            self._used = projected
        return target

    @staticmethod
    def _write_atomically(target: Path, view: memoryview) -> None:
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            try:
                written = 0
                while written < view.nbytes:
                    written += os.write(fd, view[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _fsync_directory(target.parent)

    def write_text(self, path: Path | str, text: str, *, encoding: str = "utf-8") -> Path:
        return self.write_bytes(path, text.encode(encoding))

    def delete(self, path: Path | str) -> None:
        """Delete a file or a directory tree; a missing path is not an error; the root empties the storage."""
        target = self._resolve(path, allow_root=True)
        if target == self.root:
            self.clear()
            return
        with self._lock:
            size = _tree_size(target)
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                self._used = _tree_size(self.root)
                raise
            self._used -= size

    def clear(self) -> None:
        """Delete everything under the root (the root itself stays)."""
        with self._lock:
            try:
                for entry in os.scandir(self.root):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
            finally:
                self._used = _tree_size(self.root)

    def rescan(self) -> int:
        """Measure usage again by walking the root (after changes made outside this object)."""
        with self._lock:
            self._used = _tree_size(self.root)
            return self._used

    def status(self) -> StorageStatus:
        with self._lock:
            used = self._used
        return StorageStatus(
            root=str(self.root),
            used_bytes=used,
            quota_bytes=self.quota_bytes,
            available_bytes=None if self.quota_bytes is None else max(0, self.quota_bytes - used),
        )
