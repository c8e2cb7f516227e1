"""The durable store of inactive paglets: one record file per paglet, one append-only queue log.

Layout under a host's persistence directory ``<root>``::

    <root>/inactive/.lock            held (flock) by the one store that owns the directory
    <root>/inactive/<stem>.rec       the record (format: ``paglets.persistence._recordformat``)
    <root>/inactive/<stem>.q         its queued messages, appended one fsync'd entry at a time
    <root>/inactive/.<...>.tmp       temporary files being written (debris after a crash)
    <root>/quarantine/               corrupt files moved aside, each with a ``.reason.json`` beside it

``<stem>`` is derived from the agent id (:func:`file_stem`); the byte formats and the torn-tail rule are
documented in ``_recordformat`` and in ``proto/PROTOCOL.md`` §7.

Durability and crash consistency (``durable=True``, the default):

- ``write`` writes a new record file under a temporary name, fdatasyncs it, renames it over the old one
  and fsyncs the directory. A crash leaves the old record or the new one (and maybe a temporary file,
  removed by the next ``load``), never a mix. Each write draws a new random *generation*; the queue log
  names the generation it belongs to, so the log of a replaced record is stale the moment the rename is
  durable, whether or not its deletion was.
- ``append_message`` appends one length + CRC framed entry to the log and fdatasyncs it: O(message),
  never a rewrite. The first append of a generation creates the log atomically (temporary file, rename).
  A torn last entry is ignored when read and truncated by the next append.
- ``delete`` unlinks the record and fsyncs the directory, then removes the log (an orphan log is
  ignored and removed by the next ``load``).
- When a method returns, its effect survives a process crash (and, with a disk honouring fsync, a
  power loss). ``durable=False`` skips every sync (tests, benchmarks, throw-away hosts).

Start-up cost: ``load`` reads only the first ``HEAD_READ_SIZE`` bytes of each record (the head and the
summary are there and carry their own CRC) plus the queue logs, so 100,000 records index in well under
2 s and no state is kept in memory. States and queued messages are checked (CRCs, lengths, agreement of
the parts) when ``read`` returns them; ``load(verify=True)`` checks everything up front.

Corruption never stops the store: a bad record is moved to the quarantine directory with a reason file,
dropped from the index and reported through ``on_quarantine(agent_id_or_file_name, reason)`` (or a log
line when no callback is given); ``read`` of a record found corrupt then raises the protocol error. A
corrupt queue log keeps its valid entries (a copy of the bad file is quarantined). Unknown files in the
directory (e.g. paglets 2.0 ``*.json`` records) are quarantined too.

Threads: every method may be called from any thread. Operations on one record are serialised by one of
``LOCK_STRIPES`` locks chosen by the agent id, so slow I/O on one record (a big state, an fsync) does
not block the others; the in-memory index has its own short-held lock. One store per directory: the
constructor takes an exclusive ``flock`` and raises ``HostError`` when another store (in this process
or another) holds it.

A *read-only view* (``read_only=True``) indexes and reads the same files without the lock and without
changing anything: no debris is removed, nothing is quarantined or truncated (corrupt files are skipped
and logged), a missing directory is an empty store, and ``write``/``append_message``/``delete`` raise
``HostError``. A host that is not started answers inspection from such a view; the store it opens when
it starts takes the lock and does the repairs.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import Any, Final

import msgspec

from paglets import _oscompat
from paglets.core.errors import (
    ChecksumError,
    FrameError,
    HostError,
    InvalidAgentError,
    MailboxFullError,
    ProtocolError,
    SerializationError,
)
from paglets.persistence._fileio import (
    datasync,
    fsync_fd,
    open_directory,
    open_flags,
    pwrite_all,
    read_exact,
    temp_name,
    write_new_file,
)
from paglets.persistence._quarantine import (
    MAX_QUARANTINE_LISTING,
    Quarantine,
    QuarantineCallback,
    QuarantinedFile,
    Report,
)
from paglets.persistence._recordformat import (
    GENERATION_SIZE,
    MAX_AGENT_ID_BYTES,
    MAX_QUEUE_BYTES,
    MAX_QUEUED_ENTRY,
    MAX_QUEUED_MESSAGES,
    MAX_RECORD_DETAILS,
    MAX_SUMMARY_BYTES,
    RECORD_SCHEMA_VERSION,
    RecordDetails,
    RecordHead,
    RecordSummary,
    StoredMessage,
    StoredRecord,
    decode_details,
    decode_message,
    decode_summary,
    encode_entry,
    encode_log_header,
    encode_message,
    encode_record_prefix,
    envelope_metadata,
    file_stem,
    parse_head,
    scan_entries,
    summary_for,
)
from paglets.persistence._recordindex import (
    HEAD_READ_SIZE,
    LOCK_NAME,
    LOG_SUFFIX,
    RECORD_SUFFIX,
    IndexEntry,
    RecordDirectory,
)
from paglets.wire.envelope import EnvelopeDecoder, EnvelopeEncoder, EnvelopeMetadata, MemoryviewSink
from paglets.wire.limits import MiB

__all__ = [
    "HEAD_READ_SIZE",
    "LOCK_STRIPES",
    "MAX_AGENT_ID_BYTES",
    "MAX_QUARANTINE_LISTING",
    "MAX_QUEUED_ENTRY",
    "MAX_QUEUED_MESSAGES",
    "MAX_QUEUE_BYTES",
    "MAX_RECORD_DETAILS",
    "MAX_SUMMARY_BYTES",
    "RECORD_SCHEMA_VERSION",
    "QuarantineCallback",
    "QuarantinedFile",
    "RecordStore",
    "RecordStoreStatistics",
    "RecordSummary",
    "StoredMessage",
    "StoredRecord",
    "file_stem",
]

#: Per-record locks (a record maps to one by its id's hash). Two cores and a small executor pool rarely
#: run more than a handful of store calls at once; 64 stripes make false sharing rare.
LOCK_STRIPES: Final = 64
#: Records at most this large are read with one ``pread``; larger ones are mapped (one copy less).
_MMAP_THRESHOLD: Final = 1 * MiB


class RecordStoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one store (``load_seconds`` is the duration of the last ``load``)."""

    records: int
    queued_messages: int
    stored_bytes: int
    writes: int
    appends: int
    reads: int
    deletes: int
    quarantined: int
    temp_files_removed: int
    load_seconds: float


class _StateSink:
    """Sink factory for the envelope decoder: one exactly sized ``bytearray``."""

    __slots__ = ("buffer", "expected", "sink")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.buffer = bytearray()
        self.sink: MemoryviewSink | None = None

    def __call__(self, metadata: EnvelopeMetadata, declared: int) -> MemoryviewSink:
        if declared != self.expected:
            raise ChecksumError(f"record envelope declares {declared} state bytes, summary {self.expected}")
        self.buffer = bytearray(declared)
        self.sink = MemoryviewSink(self.buffer)
        return self.sink


class RecordStore:
    """See the module docstring. Call :meth:`load` once before anything else; :meth:`close` at the end."""

    def __init__(
        self,
        root: Path | str,
        *,
        durable: bool = True,
        on_quarantine: QuarantineCallback | None = None,
        read_only: bool = False,
        directory_name: str = "inactive",
    ) -> None:
        self.root: Final = Path(root)
        self.directory: Final = self.root / directory_name
        self.quarantine_directory: Final = self.root / "quarantine"
        self.durable: Final = durable
        self.read_only: Final = read_only
        self._lock_fd = -1
        if read_only:
            # a view for inspection: no lock (the owner may hold it), no directory created, nothing changed;
            # a missing directory is an empty store (descriptor -1)
            self._dir_fd = open_directory(self.directory) if self.directory.is_dir() else -1
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._dir_fd = open_directory(self.directory)
            try:
                self._lock_fd = os.open(
                    LOCK_NAME, open_flags(os.O_RDWR | os.O_CREAT), 0o600, dir_fd=self._dir_fd
                )
                if not _oscompat.lock_exclusive(self._lock_fd):
                    os.close(self._lock_fd)
                    raise HostError(f"record store {self.directory} is in use by another store")
            except BaseException:
                os.close(self._dir_fd)
                raise
        self._quarantine = Quarantine(
            self.quarantine_directory,
            self._dir_fd,
            durable=durable,
            on_quarantine=on_quarantine,
            read_only=read_only,
        )
        self._files = RecordDirectory(self._dir_fd, self._quarantine, durable=durable, read_only=read_only)
        self._closed = False
        self._loaded = False
        self._index: dict[str, IndexEntry] = {}
        self._index_lock = threading.Lock()
        self._stripes = tuple(threading.Lock() for _ in range(LOCK_STRIPES))
        self._counts = dict.fromkeys(("writes", "appends", "reads", "deletes", "temp"), 0)
        self._load_seconds = 0.0

    # --- life cycle ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the directory lock. Idempotent; the store cannot be used afterwards."""
        with self._all_stripes():
            if self._closed:
                return
            self._closed = True
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            if self._dir_fd >= 0:
                os.close(self._dir_fd)

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _all_stripes(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for lock in self._stripes:
                stack.enter_context(lock)
            yield

    def _stripe(self, agent_id: str) -> threading.Lock:
        return self._stripes[hash(agent_id) % LOCK_STRIPES]

    def _check_open(self) -> None:
        if self._closed:
            raise HostError("the record store is closed")
        if not self._loaded:
            raise HostError("the record store is not loaded (call load() first)")

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise HostError(f"the record store view of {self.directory} is read-only")

    def _count(self, name: str, n: int = 1) -> None:
        with self._index_lock:
            self._counts[name] += n

    # --- load ----------------------------------------------------------------------------------------------

    def load(self, *, verify: bool = False) -> int:
        """Index every record on disk (replacing the index); returns the number of records.

        Removes temporary files left by a crash and stale or orphan queue logs, quarantines corrupt and
        unknown files (rules in ``_recordindex``). With ``verify`` every record is also read whole and
        checked, and the corrupt ones quarantined.
        """
        started = time.perf_counter()
        reports: list[Report] = []
        try:
            with self._all_stripes():
                if self._closed:
                    raise HostError("the record store is closed")
                index, removed = self._files.scan(reports) if self._dir_fd >= 0 else ({}, 0)
                with self._index_lock:
                    self._index = index
                    self._loaded = True
                    self._counts["temp"] += removed
                if verify:
                    for agent_id in list(index):
                        with contextlib.suppress(ProtocolError, SerializationError):
                            self._read_locked(agent_id, reports)
        except OSError as exc:
            raise HostError(f"cannot load the record store {self.directory}: {exc}") from exc
        finally:
            self._quarantine.report(reports)
        self._load_seconds = time.perf_counter() - started
        return len(self._index)

    # --- write / append / delete ---------------------------------------------------------------------------

    def write(self, record: StoredRecord, *, keep_messages: bool = False) -> RecordSummary:
        """Store ``record`` atomically and durably, replacing any record of the same agent.

        The new record's queued messages are ``record.queued_messages``; with ``keep_messages`` the
        messages already queued for the old record come first. Returns the new summary. Raises
        ``SerializationError`` for malformed fields, ``LimitExceededError`` past a size limit and
        ``MailboxFullError`` when the messages pass ``MAX_QUEUED_MESSAGES``/``MAX_QUEUE_BYTES``.
        """
        agent_id = record.agent_id
        if not isinstance(agent_id, str):
            raise SerializationError("record agent_id must be a string")
        stem = file_stem(agent_id)
        state = memoryview(record.state)
        if state.ndim != 1 or state.itemsize != 1:
            state = state.cast("B")
        reports: list[Report] = []
        try:
            with self._stripe(agent_id):
                self._check_writable()
                old = self._index.get(agent_id)
                messages = list(record.queued_messages)
                if keep_messages and old is not None:
                    try:
                        messages = self._read_messages_locked(old, reports) + messages
                    except (ProtocolError, SerializationError) as exc:  # the old record is lost anyway
                        reports.append(self._drop_corrupt(old, str(exc)))
                        old = None
                payloads = [encode_message(m) for m in messages]
                queued_bytes = sum(map(len, payloads))
                if len(payloads) > MAX_QUEUED_MESSAGES or queued_bytes > MAX_QUEUE_BYTES:
                    raise MailboxFullError(
                        f"{len(payloads)} queued messages ({queued_bytes} bytes) pass MAX_QUEUED_MESSAGES "
                        f"({MAX_QUEUED_MESSAGES}) or MAX_QUEUE_BYTES ({MAX_QUEUE_BYTES})"
                    )
                summary = summary_for(record, state.nbytes, len(payloads))
                details = RecordDetails(
                    policy=record.policy,
                    request=record.request,
                    registered_files=record.registered_files,
                    metadata=record.metadata,
                )
                generation = os.urandom(GENERATION_SIZE)
                entries = [encode_entry(p) for p in payloads]
                prefix = encode_record_prefix(summary, details, entries, generation)
                chunks = chain((prefix,), EnvelopeEncoder(envelope_metadata(summary, generation), state))
                size = self._rename_new_file(stem + RECORD_SUFFIX, temp_name(stem, RECORD_SUFFIX), chunks)
                with self._index_lock:  # the index follows the directory at once, even if the sync fails
                    self._index[agent_id] = IndexEntry(summary, stem, generation, size, queued_bytes)
                    self._counts["writes"] += 1
                self._sync_directory()
                if old is not None and old.log_size != 0:  # stale now that the rename is durable
                    with contextlib.suppress(OSError):  # clean-up only: load removes stale logs too
                        os.unlink(stem + LOG_SUFFIX, dir_fd=self._dir_fd)
        except OSError as exc:
            raise HostError(f"cannot write the inactive record of {agent_id}: {exc}") from exc
        finally:
            self._quarantine.report(reports)
        return summary

    def append_message(
        self,
        agent_id: str,
        message: Mapping[str, Any],
        *,
        oneway: bool = False,
        queued_at: float | None = None,
    ) -> int:
        """Queue a message (a ``Message`` wire dict) for an inactive paglet; returns the queued count.

        Costs one small append and one fdatasync, whatever the record's size. Raises
        ``InvalidAgentError`` when there is no record, ``MailboxFullError`` past
        ``MAX_QUEUED_MESSAGES``/``MAX_QUEUE_BYTES``, ``LimitExceededError`` for a message above
        ``MAX_QUEUED_ENTRY``. The store does not look at the record's policy: the host decides.
        """
        if not isinstance(message, Mapping):
            raise SerializationError("a queued message must be a Message wire dict")
        when = time.time() if queued_at is None else queued_at
        payload = encode_message(StoredMessage(message=dict(message), oneway=bool(oneway), queued_at=when))
        framed = encode_entry(payload)
        try:
            with self._stripe(agent_id):
                self._check_writable()
                entry = self._index.get(agent_id)
                if entry is None:
                    raise InvalidAgentError(f"no inactive record for {agent_id!r}")
                if entry.queued >= MAX_QUEUED_MESSAGES:
                    raise MailboxFullError(f"{entry.queued} messages are queued for {agent_id} (the maximum)")
                if entry.inline_bytes + entry.log_bytes + len(payload) > MAX_QUEUE_BYTES:
                    raise MailboxFullError(f"queued messages for {agent_id} would pass MAX_QUEUE_BYTES")
                name = entry.stem + LOG_SUFFIX
                if entry.log_end == 0:  # first append of this generation: create the log atomically
                    header = encode_log_header(entry.generation)
                    self._rename_new_file(name, temp_name(entry.stem, LOG_SUFFIX), (header, framed))
                    entry.log_end, entry.log_size = len(header), len(header) + len(framed)
                    self._sync_directory()
                else:
                    fd = os.open(name, open_flags(os.O_WRONLY), dir_fd=self._dir_fd)
                    try:
                        if entry.log_size != entry.log_end:  # cut a torn tail (or a failed append)
                            os.ftruncate(fd, entry.log_end)
                        entry.log_size = -1
                        pwrite_all(fd, framed, entry.log_end)
                        if self.durable:
                            datasync(fd)
                    finally:
                        os.close(fd)
                queued = entry.add_logged(len(framed), len(payload))
                self._count("appends")
                return queued
        except OSError as exc:
            raise HostError(f"cannot queue a message for {agent_id}: {exc}") from exc

    def delete(self, agent_id: str) -> bool:
        """Remove a record and its queued messages durably; ``False`` when there was none."""
        try:
            with self._stripe(agent_id):
                self._check_writable()
                entry = self._index.get(agent_id)
                if entry is None:
                    return False
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.stem + RECORD_SUFFIX, dir_fd=self._dir_fd)
                with self._index_lock:
                    del self._index[agent_id]
                    self._counts["deletes"] += 1
                self._sync_directory()
                if entry.log_size != 0:  # only once the record is durably gone: an orphan log is harmless
                    with contextlib.suppress(OSError):  # clean-up only: load removes orphan logs too
                        os.unlink(entry.stem + LOG_SUFFIX, dir_fd=self._dir_fd)
                return True
        except OSError as exc:
            raise HostError(f"cannot delete the inactive record of {agent_id}: {exc}") from exc

    def _rename_new_file(self, name: str, temp: str, chunks: Iterable[bytes | memoryview]) -> int:
        """Write ``chunks`` to ``temp``, sync it, rename it over ``name`` (the caller syncs the directory)."""
        size = write_new_file(self._dir_fd, temp, chunks, durable=self.durable)
        try:
            os.replace(temp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self._dir_fd)
            raise
        return size

    def _sync_directory(self) -> None:
        if self.durable:
            fsync_fd(self._dir_fd)

    # --- read ----------------------------------------------------------------------------------------------

    def read(self, agent_id: str) -> StoredRecord:
        """The whole record (state as a ``bytearray``, queued messages in order), fully checked.

        A corrupt record is quarantined and reported, then its protocol error is raised
        (``ChecksumError``, ``FrameError``, ...). ``InvalidAgentError`` when there is no record.
        """
        reports: list[Report] = []
        try:
            with self._stripe(agent_id):
                self._check_open()
                return self._read_locked(agent_id, reports)
        except OSError as exc:
            raise HostError(f"cannot read the inactive record of {agent_id}: {exc}") from exc
        finally:
            self._quarantine.report(reports)

    def read_messages(self, agent_id: str) -> list[StoredMessage]:
        """Only the queued messages of a record, in order (the state is not read)."""
        reports: list[Report] = []
        try:
            with self._stripe(agent_id):
                self._check_open()
                entry = self._index.get(agent_id)
                if entry is None:
                    raise InvalidAgentError(f"no inactive record for {agent_id!r}")
                try:
                    return self._read_messages_locked(entry, reports)
                except (ProtocolError, SerializationError) as exc:
                    reports.append(self._drop_corrupt(entry, str(exc)))
                    raise type(exc)(f"inactive record of {agent_id} is corrupt (quarantined): {exc}") from exc
        except OSError as exc:
            raise HostError(f"cannot read the inactive record of {agent_id}: {exc}") from exc
        finally:
            self._quarantine.report(reports)

    def _read_locked(self, agent_id: str, reports: list[Report]) -> StoredRecord:
        entry = self._index.get(agent_id)
        if entry is None:
            raise InvalidAgentError(f"no inactive record for {agent_id!r}")
        try:
            with self._open_record(entry) as view:
                head = parse_head(view)
                summary = decode_summary(view, head)
                if summary.agent_id != agent_id or head.generation != entry.generation:
                    raise FrameError("record file changed on disk behind the store")
                details = decode_details(view, head)
                messages = _inline_messages(view, head)
                sink = _StateSink(summary.state_length)
                decoder = EnvelopeDecoder(sink_factory=sink)
                with view[head.messages_end :] as envelope:
                    decoder.feed(envelope)
                decoded = decoder.finish()
                if sink.sink is not None:
                    sink.sink.release()
                _check_envelope(decoded.metadata, summary, head.generation)
            messages += self._files.read_log(entry, reports)
        except (ProtocolError, SerializationError) as exc:
            reports.append(self._drop_corrupt(entry, str(exc)))
            raise type(exc)(f"inactive record of {agent_id} is corrupt (quarantined): {exc}") from exc
        self._count("reads")
        return StoredRecord(
            agent_id=summary.agent_id,
            agent_class=summary.agent_class,
            state_class=summary.state_class,
            state=sink.buffer,
            policy=details.policy,
            request=details.request,
            deactivated_at=summary.deactivated_at,
            registered_files=details.registered_files,
            metadata=details.metadata,
            queued_messages=messages,
            schema_version=summary.schema_version,
        )

    @contextlib.contextmanager
    def _open_record(self, entry: IndexEntry) -> Iterator[memoryview]:
        """The record file as one read-only view: read whole when small, mapped when large."""
        fd = os.open(entry.stem + RECORD_SUFFIX, open_flags(os.O_RDONLY), dir_fd=self._dir_fd)
        mapped: mmap.mmap | None = None
        try:
            size = os.fstat(fd).st_size
            if size > _MMAP_THRESHOLD:
                mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
                if sys.platform != "win32":
                    mapped.madvise(mmap.MADV_SEQUENTIAL)
                data: bytes | mmap.mmap = mapped
            else:
                data = read_exact(fd, size)
        finally:
            os.close(fd)
        view = memoryview(data)
        try:
            yield view
        finally:
            view.release()
            if mapped is not None:
                try:
                    mapped.close()
                except BufferError:  # a slice escaped into a traceback: the mapping closes when collected
                    pass

    def _read_messages_locked(self, entry: IndexEntry, reports: list[Report]) -> list[StoredMessage]:
        messages: list[StoredMessage] = []
        if entry.queued > entry.log_count:  # some messages are inside the record file
            fd = os.open(entry.stem + RECORD_SUFFIX, open_flags(os.O_RDONLY), dir_fd=self._dir_fd)
            try:
                prefix = read_exact(fd, HEAD_READ_SIZE)
                head = parse_head(prefix)
                if len(prefix) < head.messages_end:
                    prefix += read_exact(fd, head.messages_end - len(prefix), len(prefix))
            finally:
                os.close(fd)
            if decode_summary(prefix, head).agent_id != entry.agent_id or head.generation != entry.generation:
                raise FrameError("record file changed on disk behind the store")
            with memoryview(prefix) as view:
                messages = _inline_messages(view, head)
        return messages + self._files.read_log(entry, reports)

    def _drop_corrupt(self, entry: IndexEntry, reason: str) -> Report:
        """Quarantine a record and its log, and forget it."""
        names = [entry.stem + RECORD_SUFFIX]
        if entry.log_size != 0:
            names.append(entry.stem + LOG_SUFFIX)
        report = self._quarantine.move(names, entry.agent_id, entry.agent_id, reason)
        with self._index_lock:
            if self._index.get(entry.agent_id) is entry:
                del self._index[entry.agent_id]
        return report

    # --- queries -------------------------------------------------------------------------------------------

    def summaries(self) -> list[RecordSummary]:
        """A snapshot of every record's summary (no state is read)."""
        with self._index_lock:
            return [entry.summary for entry in self._index.values()]

    def summary(self, agent_id: str) -> RecordSummary | None:
        """One record's summary, or ``None``."""
        entry = self._index.get(agent_id)
        return None if entry is None else entry.summary

    def contains(self, agent_id: str) -> bool:
        return agent_id in self._index

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def quarantined(self) -> list[QuarantinedFile]:
        """The quarantined files with their reasons, newest first (at most ``MAX_QUARANTINE_LISTING``)."""
        return self._quarantine.listing()

    def statistics(self) -> RecordStoreStatistics:
        with self._index_lock:
            entries = list(self._index.values())
            counts = dict(self._counts)
        return RecordStoreStatistics(
            records=len(entries),
            queued_messages=sum(e.queued for e in entries),
            stored_bytes=sum(e.record_size + max(e.log_size, 0) for e in entries),
            writes=counts["writes"],
            appends=counts["appends"],
            reads=counts["reads"],
            deletes=counts["deletes"],
            quarantined=self._quarantine.count,
            temp_files_removed=counts["temp"],
            load_seconds=self._load_seconds,
        )


# --- helpers ---------------------------------------------------------------------------------------------


def _inline_messages(view: memoryview, head: RecordHead) -> list[StoredMessage]:
    """The messages inside a record file: exactly ``message_count`` valid entries, nothing else."""
    if head.message_count == 0:
        return []
    if len(view) < head.messages_end:
        raise FrameError("record file truncated in its messages")
    scan = scan_entries(view, head.details_end, head.messages_end, head.message_count)
    if scan.problem is not None or len(scan.spans) != head.message_count:
        raise ChecksumError(f"record messages corrupt at offset {scan.end}: {scan.problem or 'wrong count'}")
    return [decode_message(view[start:end]) for start, end in scan.spans]


def _check_envelope(metadata: EnvelopeMetadata, summary: RecordSummary, generation: bytes) -> None:
    if (
        metadata.kind != "activation"
        or metadata.agent_id != summary.agent_id
        or metadata.agent_class_name != summary.agent_class
        or metadata.state_class_name != summary.state_class
        or metadata.transfer_id != generation.hex()
    ):
        raise FrameError("record envelope does not match the record summary")
