"""The record store's in-memory index and the directory scan that builds it (``RecordStore.load``).

What the index keeps per record (:class:`IndexEntry`): the summary, the file stem, the generation, and
where the queue log's valid entries end — never the state or the messages. For 100,000 records that
is a few tens of MiB.

Scan rules (one pass over the directory, then the logs):

- dot-files ending in ``.tmp`` are debris of an interrupted write and are removed; ``.lock`` is ours;
- ``<stem>.rec``: the first ``HEAD_READ_SIZE`` bytes are read; the head, the summary and the head CRC
  are checked, the file name must be the stem of the summary's agent id and the file must be long enough
  for its declared sections. Anything wrong: quarantined. States are not read;
- ``<stem>.q``: removed when no record has that stem (orphan, its record was deleted) or when it names
  another generation (stale, its record was replaced); otherwise its entries are counted and checked
  (torn tail ignored; a corrupt entry followed by more data is reported and cut, see ``_recordformat``);
- any other regular file is quarantined (e.g. a paglets 2.0 ``<id>.json`` record); directories and
  symbolic links are left alone.
"""

from __future__ import annotations

import contextlib
import os
from typing import Final

import msgspec

from paglets.core.errors import FrameError, ProtocolError, SerializationError
from paglets.persistence._fileio import TEMP_SUFFIX, datasync, open_flags, read_exact
from paglets.persistence._quarantine import Quarantine, Report
from paglets.persistence._recordformat import (
    ENTRY_HEADER_SIZE,
    LOG_HEADER_SIZE,
    MAX_QUEUE_BYTES,
    MAX_QUEUED_MESSAGES,
    RECORD_HEAD_SIZE,
    RecordSummary,
    StoredMessage,
    decode_message,
    decode_summary,
    file_stem,
    parse_head,
    parse_log_header,
    scan_entries,
)
from paglets.wire.limits import KiB

__all__ = ["HEAD_READ_SIZE", "LOCK_NAME", "LOG_SUFFIX", "RECORD_SUFFIX", "IndexEntry", "RecordDirectory"]

#: Bytes read from each record at ``load``: the 48-byte head and a summary of a few hundred bytes fit;
#: a longer summary (up to ``MAX_SUMMARY_BYTES``) costs one more read.
HEAD_READ_SIZE: Final = 4 * KiB
#: Smallest envelope: 24-byte header, 1 byte of metadata, 20-byte trailer.
_MIN_ENVELOPE: Final = 45
#: Largest log prefix that can hold valid entries; bytes past it are never read.
_MAX_LOG_READ: Final = LOG_HEADER_SIZE + MAX_QUEUE_BYTES + MAX_QUEUED_MESSAGES * ENTRY_HEADER_SIZE

_READ_FLAGS: Final = open_flags(os.O_RDONLY)

RECORD_SUFFIX: Final = ".rec"
LOG_SUFFIX: Final = ".q"
LOCK_NAME: Final = ".lock"


class IndexEntry:
    """What the index keeps per record (no state, no messages)."""

    __slots__ = (
        "generation",
        "inline_bytes",
        "log_bytes",
        "log_count",
        "log_end",
        "log_size",
        "record_size",
        "stem",
        "summary",
    )

    def __init__(
        self, summary: RecordSummary, stem: str, generation: bytes, record_size: int, inline_bytes: int
    ) -> None:
        self.summary = summary  # queued_count: inline + log messages
        self.stem = stem
        self.generation = generation
        self.record_size = record_size
        self.inline_bytes = inline_bytes  # payload bytes of the messages inside the record file
        self.log_count = 0
        self.log_bytes = 0
        self.log_end = 0  # end of the last valid log entry; 0: no log of this generation
        self.log_size = 0  # size of the log file on disk; -1: unknown (an append failed)

    @property
    def agent_id(self) -> str:
        return self.summary.agent_id

    @property
    def queued(self) -> int:
        return self.summary.queued_count

    def set_log(self, end: int, count: int, payload_bytes: int, size: int) -> None:
        """Adopt a (re)scanned log: its valid end, entry count and payload bytes, and its file size."""
        inline = self.summary.queued_count - self.log_count
        self.log_end, self.log_count, self.log_bytes, self.log_size = end, count, payload_bytes, size
        self.summary = msgspec.structs.replace(self.summary, queued_count=inline + count)

    def add_logged(self, entry_bytes: int, payload_bytes: int) -> int:
        """Account for one appended entry; returns the new queued count."""
        self.log_end += entry_bytes
        self.log_size = self.log_end
        self.log_count += 1
        self.log_bytes += payload_bytes
        self.summary = msgspec.structs.replace(self.summary, queued_count=self.summary.queued_count + 1)
        return self.summary.queued_count


class RecordDirectory:
    """Scans and reads the record files of one store directory (the store holds the locks)."""

    def __init__(
        self, dir_fd: int, quarantine: Quarantine, *, durable: bool, read_only: bool = False
    ) -> None:
        self.dir_fd: Final = dir_fd
        self.quarantine: Final = quarantine
        self.durable: Final = durable
        #: Scan without changing anything: no clean-up of debris, no quarantine, no truncation.
        self.read_only: Final = read_only

    def scan(self, reports: list[Report]) -> tuple[dict[str, IndexEntry], int]:
        """Build the index from the files (rules in the module docstring); returns it and the number of
        temporary files removed."""
        index: dict[str, IndexEntry] = {}
        by_stem: dict[str, IndexEntry] = {}
        logs: list[str] = []
        interned: dict[str, str] = {}
        removed = 0
        with os.scandir(self.dir_fd) as entries:
            names = [(e.name, e.is_file(follow_symlinks=False)) for e in entries]
        for name, is_file in names:
            if name.startswith("."):
                if name.endswith(TEMP_SUFFIX) and not self.read_only:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=self.dir_fd)
                    removed += 1
                continue
            if not is_file:
                continue
            if name.endswith(RECORD_SUFFIX):
                entry = self._load_record(name, interned, reports)
                if entry is not None:
                    index[entry.agent_id] = entry
                    by_stem[entry.stem] = entry
            elif name.endswith(LOG_SUFFIX):
                logs.append(name)
            else:
                reports.append(self.quarantine.move([name], name, None, "not a paglets record file"))
        for name in logs:
            entry = by_stem.get(name[: -len(LOG_SUFFIX)])
            if entry is None:  # orphan: its record was deleted (the log is removed after the record)
                if not self.read_only:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=self.dir_fd)
            else:
                self._load_log(name, entry, reports)
        return index, removed

    def _load_record(self, name: str, interned: dict[str, str], reports: list[Report]) -> IndexEntry | None:
        # runs for every record at start: keep it to four system calls and one decode
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            reports.append((name, f"record file unreadable, left in place: {exc}"))
            return None
        try:
            data = os.read(fd, HEAD_READ_SIZE)
            size = len(data) if len(data) < HEAD_READ_SIZE else os.fstat(fd).st_size  # short read: EOF
            head = parse_head(data)
            summary_end = RECORD_HEAD_SIZE + head.summary_length
            if len(data) < summary_end < size:
                data += read_exact(fd, summary_end - len(data), len(data))
            summary = decode_summary(data, head)
            stem = file_stem(summary.agent_id)  # the id itself for the usual ids
            if stem + RECORD_SUFFIX != name:
                raise FrameError(f"file name {name!r} does not belong to agent id {summary.agent_id!r}")
            if size < summary_end + head.details_length + head.messages_length + _MIN_ENVELOPE:
                raise FrameError(f"record file truncated ({size} bytes)")
        except (ProtocolError, SerializationError) as exc:
            reports.append(self.quarantine.move([name], name, None, str(exc)))
            return None
        except OSError as exc:
            reports.append((name, f"record file unreadable, left in place: {exc}"))
            return None
        finally:
            os.close(fd)
        # 100,000 summaries stay in memory: share the strings that repeat across records
        summary = msgspec.structs.replace(
            summary,
            agent_class=interned.setdefault(summary.agent_class, summary.agent_class),
            state_class=interned.setdefault(summary.state_class, summary.state_class),
            reason=interned.setdefault(summary.reason, summary.reason),
            source=interned.setdefault(summary.source, summary.source),
        )
        inline_bytes = head.messages_length - head.message_count * ENTRY_HEADER_SIZE
        return IndexEntry(summary, stem, head.generation, size, inline_bytes)

    def _load_log(self, name: str, entry: IndexEntry, reports: list[Report]) -> None:
        try:
            fd = os.open(name, open_flags(os.O_RDONLY), dir_fd=self.dir_fd)
            try:
                size = os.fstat(fd).st_size
                data = read_exact(fd, min(size, _MAX_LOG_READ))
            finally:
                os.close(fd)
        except OSError as exc:
            reports.append((entry.agent_id, f"queue log unreadable, left in place: {exc}"))
            return
        try:
            generation = parse_log_header(data)
        except ProtocolError as exc:
            reports.append(self.quarantine.move([name], entry.agent_id, entry.agent_id, f"queue log: {exc}"))
            return
        if generation != entry.generation:  # stale: its record was replaced since
            if not self.read_only:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self.dir_fd)
            return
        with memoryview(data) as view:
            scan = scan_entries(view, LOG_HEADER_SIZE, len(data), MAX_QUEUED_MESSAGES - entry.queued)
        entry.set_log(scan.end, len(scan.spans), scan.payload_bytes, size)
        if scan.problem is not None and (not scan.torn or size > len(data)):
            reports.append(self.salvage_log(entry, f"queue log entry at offset {scan.end}: {scan.problem}"))

    def salvage_log(self, entry: IndexEntry, reason: str) -> Report:
        """Quarantine a copy of a corrupt log, then cut it after its last valid entry."""
        name = entry.stem + LOG_SUFFIX
        report = self.quarantine.move([name], entry.agent_id, entry.agent_id, reason, copy=True)
        if self.read_only:
            return report
        with contextlib.suppress(OSError):
            fd = os.open(name, open_flags(os.O_WRONLY), dir_fd=self.dir_fd)
            try:
                os.ftruncate(fd, entry.log_end)
                if self.durable:
                    datasync(fd)
                entry.log_size = entry.log_end
            finally:
                os.close(fd)
        return report

    def read_log(self, entry: IndexEntry, reports: list[Report]) -> list[StoredMessage]:
        """The valid log entries; a log found corrupt is salvaged and reported, never fatal."""
        if entry.log_end == 0:
            return []
        fd = os.open(entry.stem + LOG_SUFFIX, open_flags(os.O_RDONLY), dir_fd=self.dir_fd)
        try:
            data = read_exact(fd, entry.log_end)
        finally:
            os.close(fd)
        messages: list[StoredMessage] = []
        problem: str | None = None
        end = 0
        spans: list[tuple[int, int]] = []
        with memoryview(data) as view:
            try:
                if parse_log_header(view) != entry.generation:
                    raise FrameError("queue log belongs to another generation")
            except ProtocolError as exc:
                problem = f"queue log header: {exc}"
            else:
                scan = scan_entries(view, LOG_HEADER_SIZE, len(data), entry.log_count)
                spans, end = scan.spans, scan.end
                if scan.problem is not None or len(spans) != entry.log_count:
                    problem = f"queue log entry at offset {scan.end}: {scan.problem or 'missing'}"
            for start, stop in spans:
                try:
                    messages.append(decode_message(view[start:stop]))
                except ProtocolError as exc:
                    problem, end = f"queued message at offset {start}: {exc}", start - ENTRY_HEADER_SIZE
                    break
        if problem is None:
            return messages
        if end < LOG_HEADER_SIZE:  # no usable header: move the whole log aside
            name = entry.stem + LOG_SUFFIX
            entry.set_log(0, 0, 0, 0)
            reports.append(self.quarantine.move([name], entry.agent_id, entry.agent_id, problem))
        else:
            kept = sum(stop - start for start, stop in spans[: len(messages)])
            entry.set_log(end, len(messages), kept, entry.log_size)
            reports.append(self.salvage_log(entry, problem))
        return messages
