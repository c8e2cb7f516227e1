"""The portable backend's IPC: file-backed rings, socket doorbells, file handoff segments.

The rings, frames and every rule of ``paglets.runtime._channel_layout`` stay as they are; only what holds
and wakes them differs from the Linux backend, so the same ``HostChannel`` and ``ChildChannel`` run on it.

Runtime directory
    Each host makes ``<base>/paglets-ipc-<pid>-<random>`` (``<base>``: ``PAGLETS_IPC_DIR``, else the
    system temp directory: ``/tmp`` or ``$TMPDIR`` on Linux and macOS, ``%TEMP%`` on Windows), mode 0700.
    It holds ``tmp/`` (segments made before their channel exists: an arriving state) and one directory
    per channel, ``c<n>/``, with the ``ring`` file and the segments in flight on that channel.

Rings
    ``c<n>/ring``: two rings in one file of ``2 * region_size`` bytes that both processes map shared
    (``mmap`` of a regular file: ``MAP_SHARED`` on POSIX, a named file mapping on Windows).

Doorbells (``SocketBell``)
    Loopback TCP connections with ``TCP_NODELAY``: a ring is one byte sent, a clear reads whatever
    arrived. One connection carries the frame doorbells both ways (the host reads what the child sends and
    the other way round); the space and service bells are connections of their own, written by the host
    only. EOF on a doorbell means the peer is gone (``ChannelClosedError`` from ``clear``).

Handoff segments (``FileSegment``, ``StreamLink``)
    A segment is a file. The sender writes it (in ``tmp/`` or the channel directory), closes it and
    renames it to ``c<n>/h<id>`` (host to child) or ``c<n>/c<id>`` (child to host), then sends the same
    16-byte ``(segment_id, length)`` message as the Linux backend over the link connection. The receiver
    checks the size, *reads the file into memory and deletes it*: there are no seals off Linux, so a
    mapping of a file the peer could still truncate could fault the reader; a copy cannot.

Reclaiming (nothing stays in the temp directory)
    * a received segment is deleted as it is read; one never opened is deleted when its channel closes;
    * a channel's directory is removed when the host closes the channel (the paglet process ended);
    * the host removes its whole directory when it stops;
    * when a host dies without stopping, its processes see EOF on their sockets: each removes its own
      channel directory, and a waiting spare process removes the host's directory once the host's pid is
      gone (``remove_if_orphaned``);
    * a host starting removes the directories of hosts whose pid is gone (``sweep_stale``), for the case
      where nothing was left running to do it. On Windows an open or mapped file cannot be deleted: what
      a dying process still held is removed by the next sweep.
"""

from __future__ import annotations

import itertools
import mmap
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from paglets.core.errors import FrameError, LimitExceededError
from paglets.runtime._channel_layout import ChannelClosedError, region_size
from paglets.runtime._handoff import SEGMENT_MESSAGE, Segment, SegmentTable
from paglets.runtime._ring import format_ring, ring_size
from paglets.wire.limits import MAX_HANDOFF_BYTES

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "HOST_DIR_PREFIX",
    "IPC_DIR_ENV",
    "FileSegment",
    "FileSegments",
    "HostDirectory",
    "SocketBell",
    "StreamLink",
    "create_ring_file",
    "ipc_base",
    "open_ring_file",
    "pid_alive",
    "remove_if_orphaned",
    "sweep_stale",
]

#: Where the runtime directories go (default: the system temp directory).
IPC_DIR_ENV: Final = "PAGLETS_IPC_DIR"
#: Name prefix of a host's runtime directory: ``paglets-ipc-<pid>-<random>``.
HOST_DIR_PREFIX: Final = "paglets-ipc-"
#: Bytes a doorbell ``clear`` reads per call (rings are single bytes; any number of them is one wake-up).
_CLEAR_CHUNK: Final = 4096
#: Bytes the link reads per call (16-byte segment messages).
_LINK_CHUNK: Final = 4096

_names = itertools.count(1)


def ipc_base() -> Path:
    return Path(os.environ.get(IPC_DIR_ENV) or tempfile.gettempdir())


if sys.platform == "win32":

    def pid_alive(pid: int) -> bool:
        """Whether a process with this pid exists (psutil: Windows has no signal 0)."""
        import psutil

        return bool(psutil.pid_exists(pid))

else:

    def pid_alive(pid: int) -> bool:
        """Whether a process with this pid exists (signal 0)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _owner_pid(name: str) -> int | None:
    if not name.startswith(HOST_DIR_PREFIX):
        return None
    pid, _, _rest = name[len(HOST_DIR_PREFIX) :].partition("-")
    return int(pid) if pid.isdigit() else None


def sweep_stale(base: Path | None = None) -> int:
    """Remove the runtime directories of hosts that are gone; how many were removed."""
    root = base or ipc_base()
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        pid = _owner_pid(entry.name)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += not os.path.exists(entry.path)
    return removed


def remove_if_orphaned(host_dir: Path, host_pid: int) -> None:
    """Remove ``host_dir`` if its host process is gone (called by processes that saw their host's EOF)."""
    if not pid_alive(host_pid):
        shutil.rmtree(host_dir, ignore_errors=True)


class HostDirectory:
    """One host's runtime directory (see the module docstring)."""

    def __init__(self, base: Path | None = None) -> None:
        root = base or ipc_base()
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / f"{HOST_DIR_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir(mode=0o700)
        self.tmp = self.path / "tmp"
        self.tmp.mkdir()
        self._channels = itertools.count(1)

    def new_channel_dir(self) -> Path:
        path = self.path / f"c{next(self._channels)}"
        path.mkdir()
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# --- rings -----------------------------------------------------------------------------------------------


def create_ring_file(directory: Path, ring_capacity: int) -> tuple[mmap.mmap, int]:
    """Create ``directory/ring`` holding two formatted rings; the mapping and the offset of the second."""
    region = region_size(ring_capacity)
    with open(directory / "ring", "x+b", buffering=0) as file:
        file.truncate(2 * region)
        mapping = mmap.mmap(file.fileno(), 2 * region)
    with memoryview(mapping) as view:
        format_ring(view[: ring_size(ring_capacity)])
        format_ring(view[region : region + ring_size(ring_capacity)])
    return mapping, region


def open_ring_file(directory: Path) -> mmap.mmap:
    """Map the ``ring`` file a host created (the child side)."""
    with open(directory / "ring", "r+b", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        if size <= 0:
            raise FrameError("empty ring file")
        return mmap.mmap(file.fileno(), size)


# --- doorbells -------------------------------------------------------------------------------------------


def tune(sock: socket.socket) -> socket.socket:
    """Non-blocking, no Nagle delay (a doorbell is one byte that must leave at once)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


class SocketBell:
    """A doorbell on a socket: ``ring`` writes a byte to ``writer`` (default: the same socket), ``clear``
    reads from ``reader``. See the module docstring."""

    __slots__ = ("_fd", "reader", "writer")

    def __init__(self, reader: socket.socket, writer: socket.socket | None = None) -> None:
        self.reader = reader
        self.writer = writer if writer is not None else reader
        self._fd = reader.fileno()

    def fileno(self) -> int:
        return self._fd

    def ring(self) -> None:
        try:
            self.writer.send(b"\x01")
        except BlockingIOError:
            pass  # unread rings fill the buffer: the peer will wake anyway
        except OSError:
            pass  # the peer is gone: its EOF is noticed where it is read

    def clear(self) -> bool:
        rung = False
        while True:
            try:
                data = self.reader.recv(_CLEAR_CHUNK)
            except BlockingIOError:
                return rung
            except OSError as exc:
                raise ChannelClosedError(f"doorbell failed: {exc}") from exc
            if not data:
                raise ChannelClosedError("the peer closed its doorbell")
            rung = True
            if len(data) < _CLEAR_CHUNK:
                return rung

    def close(self) -> None:
        self.reader.close()
        if self.writer is not self.reader:
            self.writer.close()


# --- handoff segments ------------------------------------------------------------------------------------


def _check_length(length: int) -> None:
    if not 0 <= length <= MAX_HANDOFF_BYTES:
        raise LimitExceededError(
            f"handoff of {length} bytes is outside [0, {MAX_HANDOFF_BYTES}]", fault="local"
        )


def _flat(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class FileSegment:
    """A segment being prepared in a file (the portable ``WritableSegment``). Owns its file until it is
    sent (``move_to``) or closed (then the file is deleted)."""

    __slots__ = ("_file", "_length", "_map", "_path", "_sealed", "view")

    view: memoryview | None

    def __init__(self, path: Path, length: int = 0, *, allocate: bool = False) -> None:
        self._path: Path | None = path
        self._file: Any = open(path, "x+b", buffering=0)  # noqa: SIM115 - owned until seal/close
        self._length = 0
        self._map: mmap.mmap | None = None
        self._sealed = False
        self.view = None
        if length:
            try:
                self.grow(length)
            except BaseException:
                self.close()
                raise
            if allocate:
                self._expose()

    def _expose(self) -> None:
        """Give ``view`` over the whole mapping (``allocate``)."""
        if self._map is not None:
            self.view = memoryview(self._map)

    @classmethod
    def create(cls, directory: Path, length: int = 0, *, allocate: bool = False) -> Self:
        _check_length(length)
        return cls(directory / f"s{os.getpid()}-{next(_names)}", length, allocate=allocate)

    @property
    def length(self) -> int:
        return self._length

    @property
    def sealed(self) -> bool:
        return self._sealed

    def grow(self, size: int) -> None:
        """Enlarge the unsealed file (and its mapping) to ``size`` bytes; ``view`` is dropped."""
        _check_length(size)
        if self._sealed or self._file is None:
            raise ValueError("cannot grow a sealed or closed segment")
        if size <= self._length:
            return
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.truncate(size)
        self._map = mmap.mmap(self._file.fileno(), size)
        self._length = size

    def write_at(self, offset: int, data: Buffer) -> None:
        if self._map is None:
            raise ValueError("segment has no mapping (grow it first)")
        view = _flat(data)
        end = offset + view.nbytes
        if end > self._length:
            raise LimitExceededError(
                f"write up to byte {end} of a {self._length}-byte segment", fault="local"
            )
        self._map[offset:end] = view

    def write_parts(self, parts: Sequence[memoryview]) -> None:
        """Append ``parts`` to an empty, unmapped segment (``from_payload``)."""
        total = 0
        for part in parts:
            offset = 0
            while offset < part.nbytes:
                written = self._file.write(part[offset:])
                if not written:
                    raise OSError("short write to a handoff segment file")
                offset += written
            total += part.nbytes
        self._length = total

    def read(self, length: int) -> bytes:
        """A copy of the first ``length`` bytes (from the mapping, or from the file once sealed)."""
        if self._map is not None:
            return self._map[:length]
        if self._file is not None:
            self._file.seek(0)
            data: bytes = self._file.read(length)
        elif self._path is not None:
            with open(self._path, "rb") as sealed:
                data = sealed.read(length)
        else:
            raise ValueError("segment is closed")
        if len(data) != length:
            raise FrameError(f"segment holds {len(data)} bytes, {length} were expected")
        return data

    def seal(self, length: int | None = None) -> None:
        """Unmap, trim to ``length`` and close the file. Idempotent."""
        if self._sealed:
            return
        if self._file is None:
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
            self._file.truncate(length)
            self._length = length
        self._file.close()
        self._file = None
        self._sealed = True

    def move_to(self, target: Path) -> None:
        """Seal and rename the file to ``target``: the receiver owns it from now on."""
        self.seal()
        if self._path is None:
            raise ValueError("segment was sent already")
        os.replace(self._path, target)
        self._path = None

    def close(self) -> None:
        """Free the segment without sending it (deletes the file). Idempotent."""
        if self.view is not None:
            self.view.release()
            self.view = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            _unlink(self._path)
            self._path = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FileSegments:
    """The portable ``SegmentFactory``: file segments in ``directory``."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def from_payload(self, payload: Buffer | Sequence[Buffer]) -> FileSegment:
        parts: list[memoryview] = (
            [_flat(p) for p in payload] if isinstance(payload, list | tuple) else [_flat(payload)]  # type: ignore[arg-type]  # Buffer vs Sequence[Buffer] narrowing
        )
        _check_length(sum(p.nbytes for p in parts))
        segment = FileSegment.create(self.directory)
        try:
            segment.write_parts(parts)
            segment.seal()
        except BaseException:
            segment.close()
            raise
        return segment

    def allocate(self, size: int) -> FileSegment:
        return FileSegment.create(self.directory, size, allocate=True)

    def growable(self) -> FileSegment:
        return FileSegment.create(self.directory)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # Windows: still open somewhere; the directory's removal or the next sweep takes it


def read_file_segment(path: Any, segment_id: int, length: int) -> Segment:
    """Read a received segment file into memory and delete it (always, even when it is refused)."""
    try:
        _check_length(length)
        with open(path, "rb", buffering=0) as file:
            size = os.fstat(file.fileno()).st_size
            if size != length:
                raise FrameError(f"handoff segment {segment_id} holds {size} bytes, {length} announced")
            data = bytearray(length)
            view = memoryview(data)
            got = 0
            while got < length:
                count = file.readinto(view[got:])
                if not count:
                    raise FrameError(f"handoff segment {segment_id} shrank while it was read")
                got += count
            view.release()
    except OSError as exc:
        raise FrameError(f"handoff segment {segment_id} cannot be read: {exc}") from exc
    finally:
        _unlink(Path(path))
    return Segment(segment_id, length, data if length else None)


class StreamLink:
    """The portable segment link: a loopback TCP connection carrying 16-byte segment messages; the
    segments themselves are files in the channel directory (see the module docstring)."""

    __slots__ = ("_in", "_out", "_recv_prefix", "_send_prefix", "directory", "sock")

    def __init__(self, sock: socket.socket, directory: Path, *, send_prefix: str, recv_prefix: str) -> None:
        self.sock = sock
        self.directory = directory
        self._send_prefix = send_prefix
        self._recv_prefix = recv_prefix
        self._in = bytearray()
        self._out = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def try_send(self, message: bytes, segment: Any) -> bool:
        if self._out:
            self.flush()
            if self._out:
                return False
        segment_id, _length = SEGMENT_MESSAGE.unpack(message)
        segment.move_to(self.directory / f"{self._send_prefix}{segment_id}")
        self._out += message
        self.flush()
        return True

    def pending_output(self) -> bool:
        return bool(self._out)

    def flush(self) -> None:
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except BlockingIOError:
                return
            del self._out[:sent]

    def receive(self, table: SegmentTable) -> bool:
        try:
            data = self.sock.recv(_LINK_CHUNK)
        except (ConnectionResetError, ConnectionAbortedError):
            return False
        if not data:
            return False
        buffer = self._in
        buffer += data
        size = SEGMENT_MESSAGE.size
        while len(buffer) >= size:
            segment_id, length = SEGMENT_MESSAGE.unpack_from(buffer)
            del buffer[:size]
            table.add_received(segment_id, length, self.directory / f"{self._recv_prefix}{segment_id}")
        return True

    def table(self) -> SegmentTable:
        return SegmentTable(read_file_segment, _discard_path)

    def close(self) -> None:
        self.sock.close()


def _discard_path(path: Any) -> None:
    _unlink(Path(path))
