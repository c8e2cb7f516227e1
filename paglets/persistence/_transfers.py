"""Durable transfer records: a source's decision, a target's ``executed`` mark (``proto/PROTOCOL.md`` §6.2).

One tiny file per record under ``<persistence dir>/transfers/``, named ``<transfer id>.<role>``::

    head  magic "PGLT" | version u16 = 1 | flags u16 = 0 | body_length u32 | crc u32        16 bytes
    body  MessagePack map TransferRecord                                         body_length bytes

``crc`` is the CRC-32 of the first 12 head bytes followed by the body. A write is atomic and durable
(temporary file, ``fdatasync``, rename, directory ``fsync``: two syncs of a few hundred bytes, whatever
the paglet's size). A drop only unlinks the file, without a sync: a record that reappears after a crash is
harmless, because the protocol only drops a record once both sides know the outcome, and a stale record
only makes the host answer that known outcome again (see ``paglets/runtime/_transfer.py``).

At start, temporary files are removed and every record is read; a file that fails a check (magic,
version, flags, length, CRC, its name) is moved to ``<persistence dir>/quarantine/`` and reported. The
store is not locked itself: it lives in the persistence directory that the host's record store locks.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
from pathlib import Path
from typing import Final, Literal

import msgspec

from paglets.core.errors import HostError, TransferError
from paglets.persistence._fileio import (
    TEMP_SUFFIX,
    datasync,
    fsync_fd,
    open_directory,
    open_flags,
    read_exact,
    temp_name,
    write_all,
)
from paglets.persistence._quarantine import Quarantine, QuarantineCallback
from paglets.wire.checksum import crc32
from paglets.wire.limits import KiB

__all__ = ["MAX_OPEN_TRANSFERS", "TransferRecord", "TransferStore", "decode_record", "encode_record"]

MAGIC: Final = b"PGLT"
VERSION: Final = 1
_HEAD: Final = struct.Struct("<4sHHII")
HEAD_SIZE: Final = _HEAD.size  # 16
#: Largest record body: a few ids and URLs; anything bigger is corrupt.
MAX_RECORD_BODY: Final = 4 * KiB
#: Open records a host keeps at most (decisions whose peer has not confirmed the outcome). Past it new
#: moves are refused: each open record stands for a peer that has been unreachable since the move.
MAX_OPEN_TRANSFERS: Final = 65536

Role = Literal["source", "target"]
Outcome = Literal["committed", "aborted", "executed"]

_NAME = re.compile(r"^([0-9a-f]{32})\.(source|target)$")


class TransferRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What survives a crash about one transfer (keys in this order; new keys get defaults, go last)."""

    transfer_id: str
    role: Role
    outcome: Outcome  # source: "committed" | "aborted"; target: "executed"
    agent_id: str
    peer: str  # the other host's address
    kind: str = "dispatch"  # "dispatch" | "clone" | "retract"
    written_at: float = 0.0  # Unix time of the write

    @property
    def file_name(self) -> str:
        return f"{self.transfer_id}.{self.role}"


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TransferRecord)


def encode_record(record: TransferRecord) -> bytes:
    body = _encoder.encode(record)
    head = _HEAD.pack(MAGIC, VERSION, 0, len(body), 0)
    return head[:12] + struct.pack("<I", crc32(head[:12] + body)) + body


def decode_record(data: bytes) -> TransferRecord:
    """Check and decode one record file; raises ``ValueError`` naming what is wrong."""
    if len(data) < HEAD_SIZE:
        raise ValueError(f"truncated head ({len(data)} bytes)")
    magic, version, flags, length, crc = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if version != VERSION or flags:
        raise ValueError(f"unknown version {version} or flags {flags:#x}")
    if not 0 < length <= MAX_RECORD_BODY or len(data) != HEAD_SIZE + length:
        raise ValueError(f"body length {length} does not match the file ({len(data)} bytes)")
    if crc32(data[:12] + data[HEAD_SIZE:]) != crc:
        raise ValueError("checksum mismatch")
    try:
        return _decoder.decode(data[HEAD_SIZE:])
    except msgspec.DecodeError as exc:
        raise ValueError(f"undecodable body: {exc}") from exc


class TransferStore:
    """The transfer records of one host (blocking calls: run them off the event loop)."""

    def __init__(self, root: Path, *, on_quarantine: QuarantineCallback | None = None) -> None:
        self.directory: Final = root / "transfers"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = open_directory(self.directory)
        self._quarantine = Quarantine(
            root / "quarantine", self._fd, durable=True, on_quarantine=on_quarantine
        )
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __len__(self) -> int:
        return len(self._names)

    def load(self) -> list[TransferRecord]:
        """Every valid record; debris removed, corrupt files quarantined."""
        records: list[TransferRecord] = []
        reports = []
        for name in sorted(os.listdir(self._fd)):
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=self._fd)
                continue
            try:
                record = self._read(name)
            except (OSError, ValueError) as exc:
                reports.append(self._quarantine.move([name], name, None, f"transfer record: {exc}"))
                continue
            records.append(record)
            self._names.add(name)
        self._quarantine.report(reports)
        return records

    def _read(self, name: str) -> TransferRecord:
        if _NAME.match(name) is None:
            raise ValueError("not a transfer record name")
        fd = os.open(name, open_flags(os.O_RDONLY), dir_fd=self._fd)
        try:
            data = read_exact(fd, HEAD_SIZE + MAX_RECORD_BODY + 1)
        finally:
            os.close(fd)
        record = decode_record(data)
        if record.file_name != name:
            raise ValueError(f"record of {record.file_name} stored as {name}")
        return record

    def write(self, record: TransferRecord) -> None:
        """Write (or replace) ``record`` durably: when this returns, it survives a crash."""
        if _NAME.match(record.file_name) is None:
            raise HostError(f"invalid transfer id {record.transfer_id!r}")
        data = encode_record(record)
        with self._lock:
            if record.file_name not in self._names and len(self._names) >= MAX_OPEN_TRANSFERS:
                raise TransferError(
                    f"{len(self._names)} transfers wait for an unreachable peer (MAX_OPEN_TRANSFERS)"
                )
            fd_dir = self._fd
        tmp = temp_name(record.file_name, "")
        fd = os.open(tmp, open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL), 0o600, dir_fd=fd_dir)
        try:
            try:
                write_all(fd, (data,))
                datasync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, record.file_name, src_dir_fd=fd_dir, dst_dir_fd=fd_dir)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd_dir)
            raise
        with self._lock:
            self._names.add(record.file_name)
        fsync_fd(fd_dir)

    def drop(self, transfer_id: str, role: Role) -> None:
        """Remove a record, without a sync (see the module docstring)."""
        name = f"{transfer_id}.{role}"
        with self._lock:
            self._names.discard(name)
            fd = self._fd
        if fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
