"""Handoff segments: large payloads passed between processes as sealed memfds.

A frame in a ring is limited in size (``paglets.runtime._ring``); anything bigger travels in a *handoff
segment*: an anonymous ``memfd`` holding exactly the payload, passed to the peer over the channel's unix
socket (``SCM_RIGHTS``) together with a 16-byte message ``(segment_id: u64, length: u64)``. The sender
then writes a small frame into the ring that names the segment (the frame codec embeds a
``HandoffRef``). The receiver maps the fd read-only and decodes straight from the mapping.

Rules
    * Segment ids are chosen by the sender, unique per channel direction (a counter from 1).
    * Before sending, the sender seals the memfd with ``F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
      F_SEAL_SEAL``. The receiver refuses (``FrameError``) an fd without the shrink and write seals or
      whose size differs from the announced length: a peer can then neither change the bytes under a
      decoder nor truncate the file and crash the reader with ``SIGBUS``.
    * The sender closes its fd as soon as it has been sent; the kernel keeps the file alive while it is
      in flight and while the receiver holds an fd or a mapping. Nothing has a name and nothing lives in
      ``/dev/shm``: when both processes are gone, the memory is gone, whatever crashed.
    * Lengths are bounded by ``MAX_HANDOFF_BYTES``; a receiver holds at most ``MAX_PENDING_SEGMENTS``
      received-but-unopened fds per channel (a peer flooding fds gets ``FrameError``).

Two ways to fill a segment:
    ``OutgoingSegment.from_payload(payload)`` writes bytes (or a list of parts) with ``write(2)`` (no
    mapping, no page faults in Python), and ``OutgoingSegment.allocate(size)`` gives a writable mapping
    to decode or decompress *into* (then ``seal(length)`` trims it to what was actually written). Both
    are independent of any channel and safe to run in a worker thread; the channel only sends the fd.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self

import msgspec

from paglets.core.errors import FrameError, LimitExceededError
from paglets.wire.limits import MAX_HANDOFF_BYTES

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "MAX_PENDING_SEGMENTS",
    "MEMFD_SEGMENTS",
    "SEGMENT_MESSAGE",
    "HandoffRef",
    "OutgoingSegment",
    "Segment",
    "SegmentFactory",
    "SegmentTable",
    "WritableSegment",
    "map_segment",
]

#: Received-but-unopened segment fds one channel keeps. A paglet has few large payloads in flight (a
#: state snapshot, a big reply); this bounds the fds a misbehaving peer can make us hold.
MAX_PENDING_SEGMENTS: Final = 64

#: ``(segment_id, length)`` as sent beside the fd on the channel socket.
SEGMENT_MESSAGE: Final = struct.Struct("=QQ")

#: Most buffers one ``writev`` call takes (Linux ``IOV_MAX``).
_IOV_MAX: Final = 1024

if sys.platform == "linux":
    import fcntl

    _REQUIRED_SEALS: Final = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_WRITE
    _ALL_SEALS: Final = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL

    def _new_memfd() -> int:
        return os.memfd_create("paglets-handoff", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)

    def _add_seals(fd: int) -> None:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _ALL_SEALS)

    def _sealed_against_writes(fd: int) -> bool:
        return fcntl.fcntl(fd, fcntl.F_GET_SEALS) & _REQUIRED_SEALS == _REQUIRED_SEALS

    def _map_shared(fd: int, size: int) -> mmap.mmap:
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED)

    def _map_read_only(fd: int, size: int) -> mmap.mmap:
        # No MAP_POPULATE: the kernel's fault-around maps pages 64 KiB at a time as the decoder reads,
        # which measured as fast as pre-faulting for a full read and far cheaper for a partial one.
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)

    def _writev(fd: int, parts: list[memoryview]) -> int:
        return os.writev(fd, parts) if len(parts) > 1 else os.write(fd, parts[0])

    def _pread(fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

else:  # memfd segments exist on Linux only; the portable backend uses file segments (_portable_ipc)

    def _new_memfd() -> int:
        raise OSError("memfd handoff segments need Linux; use the portable backend")

    def _add_seals(fd: int) -> None:
        raise OSError("memfd seals need Linux")

    def _sealed_against_writes(fd: int) -> bool:
        return False

    def _map_shared(fd: int, size: int) -> mmap.mmap:
        return mmap.mmap(fd, size)

    def _map_read_only(fd: int, size: int) -> mmap.mmap:
        return mmap.mmap(fd, size, access=mmap.ACCESS_READ)

    def _writev(fd: int, parts: list[memoryview]) -> int:
        return os.write(fd, parts[0])

    def _pread(fd: int, size: int, offset: int) -> bytes:
        raise OSError("pread needs a POSIX system")


class WritableSegment(Protocol):
    """A segment being prepared for sending, whatever holds it (a memfd on Linux, a file elsewhere)."""

    view: memoryview | None

    @property
    def length(self) -> int: ...
    @property
    def sealed(self) -> bool: ...
    def grow(self, size: int) -> None: ...
    def write_at(self, offset: int, data: Buffer) -> None: ...
    def read(self, length: int) -> bytes: ...
    def seal(self, length: int | None = None) -> None: ...
    def close(self) -> None: ...


class SegmentFactory(Protocol):
    """Makes the segments of one backend (``MEMFD_SEGMENTS``; ``_portable_ipc.FileSegments``)."""

    def from_payload(self, payload: Buffer | Sequence[Buffer]) -> WritableSegment: ...
    def allocate(self, size: int) -> WritableSegment: ...
    def growable(self) -> WritableSegment: ...


class HandoffRef(msgspec.Struct, frozen=True, array_like=True):
    """What a frame carries to name a segment: the sender's id and the payload length."""

    segment_id: int
    length: int


def _check_length(length: int) -> None:
    if not 0 <= length <= MAX_HANDOFF_BYTES:
        raise LimitExceededError(
            f"handoff of {length} bytes is outside [0, {MAX_HANDOFF_BYTES}]", fault="local"
        )


class OutgoingSegment:
    """A memfd being prepared for sending. Owns its fd until a channel sends it (or ``close``)."""

    __slots__ = ("_fd", "_length", "_map", "_sealed", "view")

    view: memoryview | None

    def __init__(self, fd: int, length: int, mapping: mmap.mmap | None) -> None:
        self._fd = fd
        self._length = length
        self._map = mapping
        self._sealed = False
        #: Writable view of the whole segment (``allocate`` only; None once sealed).
        self.view = memoryview(mapping) if mapping is not None else None

    @classmethod
    def from_payload(cls, payload: Buffer | Sequence[Buffer]) -> Self:
        """A sealed segment holding ``payload`` (one buffer or the concatenation of several)."""
        parts: list[memoryview] = (
            [_flat(p) for p in payload] if isinstance(payload, list | tuple) else [_flat(payload)]  # type: ignore[arg-type]  # Buffer vs Sequence[Buffer] narrowing
        )
        length = sum(p.nbytes for p in parts)
        _check_length(length)
        fd = _new_memfd()
        try:
            _write_all(fd, [p for p in parts if p.nbytes])
            segment = cls(fd, length, None)
            segment.seal()
        except BaseException:
            os.close(fd)
            raise
        return segment

    @classmethod
    def allocate(cls, size: int) -> Self:
        """A writable segment of ``size`` bytes; fill ``view`` (pages are allocated as they are first
        written, so an over-sized allocation trimmed by ``seal(length)`` costs only what was used),
        then send it."""
        _check_length(size)
        fd = _new_memfd()
        try:
            os.ftruncate(fd, size)
            mapping = _map_shared(fd, size) if size else None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, size, mapping)

    @classmethod
    def growable(cls) -> Self:
        """An empty writable segment that ``grow`` enlarges as data arrives, written with ``write_at``.

        For payloads whose announced size is not to be trusted (an inbound move): the file and its
        mapping are only as large as what was reserved so far, never as large as a claim.
        """
        return cls(_new_memfd(), 0, None)

    def grow(self, size: int) -> None:
        """Enlarge an unsealed segment to ``size`` bytes (no-op if it is that large already).

        ``ftruncate`` adds zero pages (memory is used only when written) and the mapping follows with
        ``mremap``, which moves page tables, never bytes. ``view`` is dropped: write with ``write_at``.
        """
        _check_length(size)
        if self._sealed or self._fd < 0:
            raise ValueError("cannot grow a sealed or closed segment")
        if size <= self._length:
            return
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._map is None:
            os.ftruncate(self._fd, size)
            self._map = _map_shared(self._fd, size)
        else:
            self._map.resize(size)  # ftruncate + mremap
        self._length = size

    def write_at(self, offset: int, data: Buffer) -> None:
        """Copy ``data`` into the segment at ``offset`` (which ``grow`` made large enough)."""
        if self._map is None:
            raise ValueError("segment has no mapping (grow it first)")
        view = _flat(data)
        end = offset + view.nbytes
        if end > self._length:
            raise LimitExceededError(
                f"write up to byte {end} of a {self._length}-byte segment", fault="local"
            )
        self._map[offset:end] = view

    def read(self, length: int) -> bytes:
        """A copy of the first ``length`` bytes (from the mapping, or from the file once sealed)."""
        if self._map is not None:
            return self._map[:length]
        if self._fd < 0:
            raise ValueError("segment is closed")
        parts: list[bytes] = []
        offset = 0
        while offset < length:
            part = _pread(self._fd, length - offset, offset)
            if not part:
                raise FrameError(f"segment holds {offset} bytes, {length} were expected")
            parts.append(part)
            offset += len(part)
        return b"".join(parts)

    @property
    def length(self) -> int:
        """Payload length (after ``seal``, the sealed length)."""
        return self._length

    @property
    def sealed(self) -> bool:
        return self._sealed

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("segment is closed")
        return self._fd

    def seal(self, length: int | None = None) -> None:
        """Unmap, trim to ``length`` (default: the whole allocation) and seal. Idempotent.

        Raises ``BufferError`` if views derived from ``view`` are still alive.
        """
        if self._sealed:
            return
        if self._fd < 0:
            raise ValueError("segment is closed")
        if length is not None and not 0 <= length <= self._length:
            raise ValueError(f"seal length {length} outside [0, {self._length}]")
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._map is not None:
            self._map.close()  # raises BufferError while derived views exist
            self._map = None
        if length is not None and length != self._length:
            os.ftruncate(self._fd, length)
            self._length = length
        _add_seals(self._fd)
        self._sealed = True

    def detach_fd(self) -> int:
        """Hand the (sealed) fd over to the caller; the segment no longer owns it."""
        if not self._sealed:
            self.seal()
        fd, self._fd = self._fd, -1
        return fd

    def close(self) -> None:
        """Free the segment without sending it. Idempotent."""
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass  # a caller still holds a view; the mapping goes when that view does
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _flat(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _write_all(fd: int, parts: list[memoryview]) -> None:
    """Write every byte of ``parts`` to ``fd`` (``writev`` in batches, resuming partial writes)."""
    index = 0
    while index < len(parts):
        batch = parts[index : index + _IOV_MAX]
        written = _writev(fd, batch)
        for view in batch:
            if written >= view.nbytes:
                written -= view.nbytes
                index += 1
            else:
                parts[index] = view[written:]
                break


class Segment:
    """A received segment mapped read-only. ``view`` stays valid until ``close`` (context manager)."""

    __slots__ = ("_closed", "_map", "_on_close", "length", "segment_id", "view")

    def __init__(self, segment_id: int, length: int, mapping: mmap.mmap | bytearray | None) -> None:
        self.segment_id = segment_id
        self.length = length
        self._map = mapping
        self.view: memoryview = memoryview(mapping) if mapping is not None else memoryview(b"")
        self._on_close: SegmentTable | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Unmap. Idempotent. Views derived from ``view`` keep the mapping alive until released."""
        self._closed = True
        self.view.release()
        self.view = memoryview(b"")
        if isinstance(self._map, mmap.mmap):
            try:
                self._map.close()
            except BufferError:
                pass  # derived views alive: the mapping is freed when the last one is released
        self._map = None
        if self._on_close is not None:
            self._on_close.forget(self)
            self._on_close = None

    def detach(self) -> None:
        """Stop the channel from closing this segment when the channel closes; the caller owns it."""
        if self._on_close is not None:
            self._on_close.forget(self)
            self._on_close = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segment(id={self.segment_id}, length={self.length})"


def map_segment(fd: int, segment_id: int, length: int) -> Segment:
    """Validate a received segment fd and map it read-only. Always consumes (closes) ``fd``."""
    try:
        _check_length(length)
        if not _sealed_against_writes(fd):
            raise FrameError(f"handoff segment {segment_id} is not sealed against writes and shrinking")
        size = os.fstat(fd).st_size
        if size != length:
            raise FrameError(f"handoff segment {segment_id} holds {size} bytes, {length} announced")
        mapping = _map_read_only(fd, length) if length else None
    except OSError as exc:
        raise FrameError(f"handoff segment {segment_id} cannot be mapped: {exc}") from exc
    finally:
        os.close(fd)
    return Segment(segment_id, length, mapping)


class SegmentTable:
    """One channel side's bookkeeping: segments received but not opened yet, and segments it opened.

    What identifies a received segment (``handle``) depends on the link that carried it: an fd on Linux,
    a file path with the portable backend. ``open_received(handle, segment_id, length)`` maps or reads it
    (and always consumes the handle); ``discard(handle)`` frees one never opened. By default both are
    the memfd ones. ``close_all`` frees everything still tracked (pending handles are discarded, open
    segments unmapped).
    """

    __slots__ = ("_discard", "_open", "_open_received", "_pending")

    def __init__(
        self,
        open_received: Callable[[Any, int, int], Segment] | None = None,
        discard: Callable[[Any], None] | None = None,
    ) -> None:
        self._pending: dict[int, tuple[Any, int]] = {}
        self._open: set[Segment] = set()
        self._open_received: Callable[[Any, int, int], Segment] = open_received or map_segment
        self._discard: Callable[[Any], None] = discard or os.close

    def add_received(self, segment_id: int, length: int, handle: Any) -> None:
        """Remember a segment that arrived on the link (takes ownership of ``handle``)."""
        if segment_id in self._pending:
            self._discard(handle)
            raise FrameError(f"handoff segment id {segment_id} received twice")
        if len(self._pending) >= MAX_PENDING_SEGMENTS:
            self._discard(handle)
            raise FrameError(f"more than {MAX_PENDING_SEGMENTS} handoff segments pending")
        self._pending[segment_id] = (handle, length)

    def has(self, segment_id: int) -> bool:
        return segment_id in self._pending

    def open(self, segment_id: int, length: int) -> Segment:
        """Map the segment (which must have arrived) and track it; ``length`` is what the frame says."""
        entry = self._pending.pop(segment_id, None)
        if entry is None:
            raise FrameError(f"unknown handoff segment {segment_id}")
        handle, announced = entry
        if length != announced:
            self._discard(handle)
            raise FrameError(
                f"handoff segment {segment_id}: frame says {length} bytes, socket said {announced}"
            )
        segment = self._open_received(handle, segment_id, length)
        segment._on_close = self
        self._open.add(segment)
        return segment

    def forget(self, segment: Segment) -> None:
        self._open.discard(segment)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def close_all(self) -> None:
        for handle, _length in self._pending.values():
            self._discard(handle)
        self._pending.clear()
        for segment in list(self._open):
            segment.close()
        self._open.clear()


class _MemfdSegments:
    """The Linux backend's segment factory: sealed memfds (``OutgoingSegment``)."""

    def from_payload(self, payload: Buffer | Sequence[Buffer]) -> OutgoingSegment:
        return OutgoingSegment.from_payload(payload)

    def allocate(self, size: int) -> OutgoingSegment:
        return OutgoingSegment.allocate(size)

    def growable(self) -> OutgoingSegment:
        return OutgoingSegment.growable()


#: The segment factory of the Linux backend.
MEMFD_SEGMENTS: Final = _MemfdSegments()
