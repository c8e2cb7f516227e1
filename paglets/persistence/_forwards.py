"""Forwarding entries: where a paglet went when it left this host (``proto/PROTOCOL.md`` §7.3).

A host that a paglet left (a dispatch, or a retract to another host) remembers its new place for a while,
so that requests sent to the old place are answered with the new one (``PagletMovedError``, HTTP 404 with
``moved_to``) and proxies follow. Entries are bounded in number (the oldest go first) and in time (a TTL
counted on the wall clock, since they outlive restarts), and survive restarts:

- the file ``forwards.log`` in the records' directory is an append-only log of frames ``u32 length, u32
  crc32, body`` where the body is a MessagePack ``[agent_id, host_url, new_agent_id, expires_at]``; an
  entry whose ``expires_at`` is 0 removes the id (a paglet that came back, or was disposed here);
- each append is one ``write``, not synced: it survives a crash of the host's process at once, and a
  crash of the machine loses at most the entries the kernel had not written out yet (stale proxies then
  get "not found" instead of the new place; an entry is a convenience, never the paglet's only trace).
  A torn or damaged tail is ignored at load (a crash during an append loses at most that entry);
- when the log holds more than twice the live entries (and at every start) it is rewritten whole under
  a temporary name, synced, renamed over the log and the directory synced (``_fileio``'s rule).

Blocking calls: run them off the event loop, except ``note``, ``unnote`` and a ``log`` while
``change_is_cheap`` (one unsynced append). One lock serialises them.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Final, NamedTuple

import msgspec

from paglets.persistence._fileio import (
    fsync_fd,
    open_directory,
    open_flags,
    temp_name,
    write_all,
    write_new_file,
)

__all__ = ["FORWARD_TTL", "MAX_FORWARDS", "Forward", "ForwardFrame", "ForwardStore"]

#: Seconds a forwarding entry is kept: long enough for every proxy in use to meet it, short enough that
#: a host does not answer for paglets long gone.
FORWARD_TTL: Final = 24 * 3600.0
#: Entries one host keeps (the oldest go first); ~150 bytes each in memory and on disk.
MAX_FORWARDS: Final = 100_000
#: Name of the log in the records' directory.
FILE_NAME: Final = "forwards.log"
#: Largest frame body read back (an agent id, a URL and two numbers fit many times over).
MAX_FRAME: Final = 4096

_HEAD: Final = struct.Struct(">II")


class Forward(NamedTuple):
    """Where ``agent_id`` went: ``host_url``, as ``agent_id`` there (the same id for a move)."""

    host_url: str
    agent_id: str
    expires_at: float


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    agent_id: str
    host_url: str
    new_agent_id: str
    expires_at: float


#: A change of the log, from ``ForwardStore.note``/``unnote``, made durable by ``ForwardStore.log``.
ForwardFrame = _Entry

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(_Entry)


def _frame(entry: _Entry) -> bytes:
    body = _ENCODER.encode(entry)
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


class ForwardStore:
    """See the module docstring. ``root=None``: kept in memory only."""

    def __init__(
        self,
        root: Path | None,
        *,
        ttl: float = FORWARD_TTL,
        limit: int = MAX_FORWARDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = root
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._entries: OrderedDict[str, Forward] = OrderedDict()
        self._lock = threading.Lock()
        self._fd = -1
        self._dir_fd = -1
        self._frames = 0

    @property
    def change_is_cheap(self) -> bool:
        """The next ``log`` is one small unsynced append (no compaction, which rewrites and syncs the
        log), or touches memory only: cheap enough for the caller's event loop."""
        if self._root is None:
            return True
        return self._frames <= 2 * max(len(self._entries), 64)

    def __len__(self) -> int:
        return len(self._entries)

    # --- start and stop ---------------------------------------------------------------------------------

    def load(self) -> int:
        """Read the log (expired and removed entries dropped), rewrite it compacted; the live count."""
        with self._lock:
            if self._root is None:
                return 0
            self._root.mkdir(parents=True, exist_ok=True)
            self._dir_fd = open_directory(self._root)
            now = self._clock()
            try:
                data = (self._root / FILE_NAME).read_bytes()
            except FileNotFoundError:
                return 0  # nothing to compact: the first entry creates the log
            offset = 0
            while offset + _HEAD.size <= len(data):
                size, crc = _HEAD.unpack_from(data, offset)
                body = data[offset + _HEAD.size : offset + _HEAD.size + size]
                if size > MAX_FRAME or len(body) != size or zlib.crc32(body) != crc:
                    break  # a torn or damaged tail: what follows cannot be trusted
                offset += _HEAD.size + size
                try:
                    entry = _DECODER.decode(body)
                except msgspec.DecodeError:
                    break
                self._entries.pop(entry.agent_id, None)
                if entry.expires_at > now:
                    self._entries[entry.agent_id] = Forward(
                        entry.host_url, entry.new_agent_id, entry.expires_at
                    )
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)
            self._rewrite_locked()
            return len(self._entries)

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._dir_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._dir_fd = -1

    # --- entries -----------------------------------------------------------------------------------------

    def lookup(self, agent_id: str) -> Forward | None:
        """The live entry of ``agent_id`` (no disk access; safe from any thread)."""
        found = self._entries.get(agent_id)
        if found is None or found.expires_at <= self._clock():
            return None
        return found

    def add(self, agent_id: str, host_url: str, new_agent_id: str) -> None:
        """Remember that ``agent_id`` left for ``host_url`` (in the log when this returns)."""
        self.log(self.note(agent_id, host_url, new_agent_id))

    def drop(self, agent_id: str) -> bool:
        """Forget ``agent_id`` (it is here again, or gone for good); whether there was an entry."""
        entry = self.unnote(agent_id)
        if entry is None:
            return False
        self.log(entry)
        return True

    def note(self, agent_id: str, host_url: str, new_agent_id: str) -> _Entry:
        """``add`` in memory only (lookups see it at once); returns the frame that ``log`` makes durable."""
        expires = self._clock() + self._ttl
        with self._lock:
            self._entries.pop(agent_id, None)
            self._entries[agent_id] = Forward(host_url, new_agent_id, expires)
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)
        return _Entry(agent_id, host_url, new_agent_id, expires)

    def unnote(self, agent_id: str) -> _Entry | None:
        """``drop`` in memory only; the removal frame for ``log``, or None when there was no entry."""
        with self._lock:
            if self._entries.pop(agent_id, None) is None:
                return None
        return _Entry(agent_id, "", "", 0.0)

    def log(self, entry: _Entry) -> None:
        """Append a frame from ``note``/``unnote`` (frames must be logged in the order they were made: the
        last frame of an agent id wins when the log is read back)."""
        with self._lock:
            self._append_locked(entry)

    def entries(self) -> dict[str, Forward]:
        """A copy of the live entries."""
        now = self._clock()
        return {k: v for k, v in list(self._entries.items()) if v.expires_at > now}

    # --- the log -----------------------------------------------------------------------------------------

    def _append_locked(self, entry: _Entry) -> None:
        if self._root is None or self._dir_fd < 0:
            return
        if self._frames > 2 * max(len(self._entries), 64):
            self._rewrite_locked()
            return
        if self._fd < 0:
            self._fd = os.open(
                FILE_NAME, open_flags(os.O_WRONLY | os.O_CREAT | os.O_APPEND), 0o600, dir_fd=self._dir_fd
            )
        write_all(self._fd, [_frame(entry)])
        self._frames += 1

    def _rewrite_locked(self) -> None:
        if self._root is None:
            return
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        frames = [
            _frame(_Entry(agent_id, f.host_url, f.agent_id, f.expires_at))
            for agent_id, f in self._entries.items()
        ]
        temp = temp_name("forwards", ".log")
        write_new_file(self._dir_fd, temp, frames, durable=True)
        try:
            os.rename(temp, FILE_NAME, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._dir_fd)
            raise
        fsync_fd(self._dir_fd)
        self._frames = len(frames)
