"""Moving corrupt record-store files aside, with a reason, and reporting them.

Quarantine rules: a file found corrupt is renamed (or, for a queue log whose valid entries are kept, copied)
into ``<root>/quarantine/`` under ``<UTC time>-<pid>-<sequence>-<original name>``, and a
``<...>.reason.json`` file beside it records the original name, the agent id when known, the reason and
the time (a :class:`QuarantinedFile`). With ``durable`` both directories are fsync'd afterwards, so the
move survives a crash. Quarantining never raises: a failure to move is logged and the report still goes
out (the file is then found again at the next start).

Reports go to the ``on_quarantine(agent_id_or_file_name, reason)`` callback, which the host turns into an
event and a log line; without a callback the store logs a warning itself. Callbacks run outside the
store's locks; an exception in one is logged and swallowed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import msgspec

from paglets import _oscompat
from paglets.persistence._fileio import fsync_fd, open_directory, open_flags, write_new_file
from paglets.wire.limits import KiB

__all__ = ["MAX_QUARANTINE_LISTING", "Quarantine", "QuarantineCallback", "QuarantinedFile", "Report"]

_log = logging.getLogger("paglets.persistence")

#: Entries returned by :meth:`Quarantine.listing` (the newest). The directory itself is not bounded by
#: the store: it is for an operator to inspect and clear.
MAX_QUARANTINE_LISTING: Final = 1000
#: Largest reason file read back (ours are a few hundred bytes).
_MAX_REASON_FILE: Final = 64 * KiB
REASON_SUFFIX: Final = ".reason.json"

QuarantineCallback = Callable[[str, str], None]
#: (agent id or file name, reason) — one report for the callback.
Report = tuple[str, str]


class QuarantinedFile(msgspec.Struct, frozen=True, kw_only=True):
    """One quarantine reason file: which files were moved (or copied) aside and why."""

    files: list[str]
    original: str
    agent_id: str | None
    reason: str
    quarantined_at: float


class Quarantine:
    """The quarantine directory of one store; ``source_fd`` is the store directory's descriptor."""

    def __init__(
        self,
        directory: Path,
        source_fd: int,
        *,
        durable: bool,
        on_quarantine: QuarantineCallback | None,
        read_only: bool = False,
    ) -> None:
        self.directory: Final = directory
        self._source_fd = source_fd
        self._durable = durable
        self._on_quarantine = on_quarantine
        #: A read-only store never moves files: the owner of the directory quarantines them at its start.
        self.read_only: Final = read_only
        self._lock = threading.Lock()
        self._sequence = 0

    @property
    def count(self) -> int:
        """Files quarantined by this object."""
        return self._sequence

    def move(
        self, names: list[str], label: str, agent_id: str | None, reason: str, *, copy: bool = False
    ) -> Report:
        """Move (or copy) ``names`` from the store directory into quarantine; returns the report.
        Read-only: nothing is moved, the report says so."""
        if self.read_only:
            return (label, f"{reason} (left in place: read-only view)")
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        now = time.time()
        prefix = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{os.getpid()}-{sequence:06d}-"
        moved: list[str] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            qfd = open_directory(self.directory)
            try:
                for name in names:
                    target = prefix + name
                    try:
                        if copy:
                            _copy_file(self._source_fd, name, qfd, target)
                        else:
                            os.rename(name, target, src_dir_fd=self._source_fd, dst_dir_fd=qfd)
                    except FileNotFoundError:
                        continue
                    moved.append(target)
                info = QuarantinedFile(
                    files=moved, original=names[0], agent_id=agent_id, reason=reason, quarantined_at=now
                )
                reason_name = prefix + names[0] + REASON_SUFFIX
                write_new_file(qfd, reason_name, (msgspec.json.encode(info),), durable=self._durable)
                if self._durable:
                    fsync_fd(qfd)
                    fsync_fd(self._source_fd)
            finally:
                os.close(qfd)
        except OSError as exc:
            _log.error("could not quarantine %s: %s", names, exc)
        return (label, reason)

    def report(self, reports: list[Report]) -> None:
        """Hand reports to the callback (call without holding store locks)."""
        for label, reason in reports:
            if self.read_only:
                _log.info("inactive record %s skipped by a read-only view: %s", label, reason)
                continue
            if self._on_quarantine is None:
                _log.warning("inactive record %s quarantined: %s", label, reason)
                continue
            try:
                self._on_quarantine(label, reason)
            except Exception:
                _log.exception("on_quarantine callback failed for %s", label)

    def listing(self) -> list[QuarantinedFile]:
        """The reason files, newest first (at most ``MAX_QUARANTINE_LISTING``)."""
        try:
            names = sorted((n for n in os.listdir(self.directory) if n.endswith(REASON_SUFFIX)), reverse=True)
        except FileNotFoundError:
            return []
        found: list[QuarantinedFile] = []
        for name in names[:MAX_QUARANTINE_LISTING]:
            with contextlib.suppress(OSError, msgspec.DecodeError):
                with open(self.directory / name, "rb") as file:
                    data = file.read(_MAX_REASON_FILE)
                found.append(msgspec.json.decode(data, type=QuarantinedFile))
        return found


def _copy_file(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    fd_in = os.open(src, open_flags(os.O_RDONLY), dir_fd=src_dir)
    try:
        size = os.fstat(fd_in).st_size
        fd_out = os.open(dst, open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL), 0o600, dir_fd=dst_dir)
        try:
            done = 0
            while done < size:
                sent = _copy_range(fd_out, fd_in, done, size - done)
                if sent == 0:
                    break
                done += sent
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


if sys.platform == "win32":

    def _copy_range(fd_out: int, fd_in: int, offset: int, count: int) -> int:
        """Copy up to ``count`` bytes from ``fd_in`` at ``offset`` to ``fd_out`` (no sendfile here)."""
        data = _oscompat.pread(fd_in, min(count, 1 << 20), offset)
        return os.write(fd_out, data) if data else 0

else:

    def _copy_range(fd_out: int, fd_in: int, offset: int, count: int) -> int:
        return os.sendfile(fd_out, fd_in, offset, count)
