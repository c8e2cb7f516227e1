"""The benchmark kernels: CPU (single and multi-process), memory and bounded temporary disk I/O.

Every kernel runs for a given number of seconds (or until its byte budget is used) and reports
operations or bytes per second. Multi-core kernels run the single-core kernel in ``workers`` forked
processes at once and add up what they did (forking needs no pool machinery and works inside a paglet
process). Disk kernels write a temporary file of ``size`` bytes in 1 MiB blocks (then fsync), read it
back, and create and delete :data:`METADATA_FILES` small files; targets with less than twice ``size``
free, read-only or duplicate file systems are skipped with the reason. Nothing is left behind.

:func:`benchmark_lock` serialises benchmarks on one machine (several hosts may share it): a file lock
in the temporary directory, waited for at most ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import select
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from paglets import _oscompat

__all__ = [
    "BLOCK",
    "METADATA_FILES",
    "DiskResult",
    "KernelResult",
    "benchmark_lock",
    "disk_benchmark",
    "memory_kernels",
    "multi_core",
    "single_core",
]

#: Block size of the disk kernels and the memory buffers' unit.
BLOCK: Final = 1 << 20
#: Memory kernel buffer size.
MEMORY_BUFFER: Final = 8 << 20
#: Small files created and deleted by the metadata kernel.
METADATA_FILES: Final = 100
#: Most processes a multi-core kernel forks.
MAX_WORKERS: Final = 64
#: The lock file that serialises benchmarks on one machine.
LOCK_NAME: Final = "paglets-benchmark.lock"


@dataclass(frozen=True, slots=True)
class KernelResult:
    name: str
    seconds: float = 0.0
    operations: int = 0
    operations_per_second: float = 0.0
    bytes_processed: int = 0
    bytes_per_second: float = 0.0
    error: str = ""


@dataclass(frozen=True, slots=True)
class DiskResult:
    path: str
    device: int = 0
    total_bytes: int = 0
    free_bytes: int = 0
    size_bytes: int = 0
    write_seconds: float = 0.0
    write_bytes_per_second: float = 0.0
    fsync_seconds: float = 0.0
    read_seconds: float = 0.0
    read_bytes_per_second: float = 0.0
    metadata_files_per_second: float = 0.0


def _result(name: str, seconds: float, operations: int = 0, processed: int = 0) -> KernelResult:
    seconds = max(seconds, 1e-9)
    return KernelResult(name, seconds, operations, operations / seconds, processed, processed / seconds)


# --- CPU ----------------------------------------------------------------------------------------------


def _integer(duration: float) -> KernelResult:
    x, ops, chunk = 12345, 0, 10_000
    began = time.perf_counter()
    while True:
        for _ in range(chunk):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        ops += chunk
        elapsed = time.perf_counter() - began
        if elapsed >= duration:
            return _result("integer", elapsed, ops)


def _float(duration: float) -> KernelResult:
    value, ops, chunk = 0.5, 0, 10_000
    sin = math.sin
    began = time.perf_counter()
    while True:
        for i in range(chunk):
            value = sin(value) * 1.000001 + i * 1e-9
        ops += chunk
        elapsed = time.perf_counter() - began
        if elapsed >= duration:
            return _result("float", elapsed, ops)


def _sha256(duration: float) -> KernelResult:
    block = os.urandom(64 * 1024)
    digest = hashlib.sha256()
    processed = 0
    began = time.perf_counter()
    while True:
        for _ in range(16):
            digest.update(block)
        processed += 16 * len(block)
        elapsed = time.perf_counter() - began
        if elapsed >= duration:
            return _result("sha256", elapsed, processed // len(block), processed)


CPU_KERNELS: Final[dict[str, Callable[[float], KernelResult]]] = {
    "integer": _integer,
    "float": _float,
    "sha256": _sha256,
}


def single_core(duration: float) -> list[KernelResult]:
    return [kernel(duration) for kernel in CPU_KERNELS.values()]


def _forked(kernel: str, duration: float, workers: int) -> KernelResult:
    """``kernel`` in ``workers`` processes at once; the totals of all of them."""
    if sys.platform == "win32":
        raise OSError("multi-core kernels fork their workers; Windows has no fork")
    else:
        return _forked_posix(kernel, duration, workers)


if sys.platform != "win32":  # fork and waitpid: POSIX only

    def _forked_posix(kernel: str, duration: float, workers: int) -> KernelResult:
        children: list[tuple[int, int]] = []
        began = time.perf_counter()
        try:
            for _ in range(workers):
                read_end, write_end = os.pipe()
                with warnings.catch_warnings():  # fork in a threaded process: the child only computes
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
                if pid == 0:  # pragma: no cover - the forked child
                    code = 0
                    try:
                        os.close(read_end)
                        found = CPU_KERNELS[kernel](duration)
                        os.write(write_end, json.dumps([found.operations, found.bytes_processed]).encode())
                    except BaseException:
                        code = 1
                    finally:
                        os._exit(code)
                os.close(write_end)
                children.append((pid, read_end))
            operations = processed = 0
            limit = time.monotonic() + duration * 4 + 30
            for _pid, read_end in children:
                data = b""
                while time.monotonic() < limit:
                    ready, _, _ = select.select([read_end], [], [], max(0.0, limit - time.monotonic()))
                    if not ready:
                        break
                    chunk = os.read(read_end, 4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    counted = json.loads(data)
                    operations += int(counted[0])
                    processed += int(counted[1])
            elapsed = time.perf_counter() - began
        finally:
            for pid, read_end in children:
                with contextlib.suppress(OSError):
                    os.close(read_end)
                with contextlib.suppress(ChildProcessError, OSError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        os.kill(pid, 9)
                        os.waitpid(pid, 0)
        return _result(f"{kernel}-multi", max(elapsed, duration), operations, processed)


def multi_core(duration: float, workers: int) -> list[KernelResult]:
    count = max(1, min(MAX_WORKERS, workers))
    return [_forked(name, duration, count) for name in CPU_KERNELS]


# --- memory -------------------------------------------------------------------------------------------


def memory_kernels(duration: float) -> list[KernelResult]:
    source = bytearray(os.urandom(BLOCK)) * (MEMORY_BUFFER // BLOCK)
    target = bytearray(len(source))
    copied = 0
    began = time.perf_counter()
    while True:
        target[:] = source
        copied += len(source)
        elapsed = time.perf_counter() - began
        if elapsed >= duration:
            break
    copy = _result("memory-copy", elapsed, copied // len(source), copied)
    scanned = 0
    began = time.perf_counter()
    while True:
        source.count(0)
        scanned += len(source)
        elapsed = time.perf_counter() - began
        if elapsed >= duration:
            break
    return [copy, _result("memory-scan", elapsed, scanned // len(source), scanned)]


# --- disk ---------------------------------------------------------------------------------------------


def disk_targets(paths: list[str], size: int) -> tuple[list[Path], dict[str, str]]:
    """The directories to test (one per file system) and ``{path: why skipped}``."""
    chosen: list[Path] = []
    skipped: dict[str, str] = {}
    devices: set[int] = set()
    for text in paths or [tempfile.gettempdir()]:
        path = Path(text).expanduser()
        try:
            info = path.stat()
        except OSError as exc:
            skipped[text] = exc.strerror or str(exc)
            continue
        if not path.is_dir():
            skipped[text] = "not a directory"
        elif not os.access(path, os.W_OK):
            skipped[text] = "not writable"
        elif info.st_dev in devices:
            skipped[text] = "same file system as another target"
        elif shutil.disk_usage(path).free < 2 * size:
            skipped[text] = f"less than twice {size} bytes free"
        else:
            devices.add(info.st_dev)
            chosen.append(path)
    return chosen, skipped


def disk_benchmark(path: Path, size: int) -> DiskResult:
    """Write, fsync and read back ``size`` bytes under ``path``, then the metadata kernel; cleans up."""
    usage = shutil.disk_usage(path)
    folder = Path(tempfile.mkdtemp(prefix=".paglets-bench-", dir=path))
    try:
        target = folder / "data.bin"
        block = os.urandom(min(BLOCK, max(1, size)))
        began = time.perf_counter()
        with target.open("wb", buffering=0) as handle:
            left = size
            while left > 0:
                left -= handle.write(block[: min(left, len(block))])
            written = time.perf_counter()
            os.fsync(handle.fileno())
            synced = time.perf_counter()
            if sys.platform == "linux":
                with contextlib.suppress(OSError):
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        began_read = time.perf_counter()
        with target.open("rb", buffering=0) as handle:
            while handle.read(BLOCK):
                pass
        read = time.perf_counter() - began_read
        began_meta = time.perf_counter()
        for _ in range(METADATA_FILES):
            name = folder / uuid.uuid4().hex
            name.write_bytes(b"x")
            name.unlink()
        meta = time.perf_counter() - began_meta
        write_time = max(synced - began, 1e-9)
        return DiskResult(
            path=str(path),
            device=path.stat().st_dev,
            total_bytes=usage.total,
            free_bytes=usage.free,
            size_bytes=size,
            write_seconds=write_time,
            write_bytes_per_second=size / write_time,
            fsync_seconds=synced - written,
            read_seconds=read,
            read_bytes_per_second=size / max(read, 1e-9),
            metadata_files_per_second=METADATA_FILES / max(meta, 1e-9),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def benchmark_lock(timeout: float) -> Iterator[float]:
    """Hold the machine-wide benchmark lock; yields the seconds waited. ``TimeoutError`` after ``timeout``."""
    path = Path(tempfile.gettempdir()) / LOCK_NAME
    began = time.monotonic()
    with path.open("a+b") as handle:
        while True:
            if _oscompat.lock_exclusive(handle.fileno()):
                break
            if time.monotonic() - began >= timeout:
                raise TimeoutError(f"another benchmark held {path} for {timeout:g} s") from None
            time.sleep(0.05)  # polling a lock held by another process; flock has no timeout
        try:
            yield time.monotonic() - began
        finally:
            _oscompat.unlock(handle.fileno())
