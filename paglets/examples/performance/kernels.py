"""The benchmark kernels: CPU (single and multi-process), memory and bounded temporary disk I/O.

Every kernel runs for a given number of seconds (or until its byte budget is used) and reports operations
or bytes per second. Multi-core kernels run the single-core kernel in ``workers`` worker processes at
once (fresh interpreters started with ``subprocess``, on every OS) and add up what they did. Disk kernels
write a temporary file of ``size`` bytes in 1 MiB blocks (then fsync), read it back, and create and
delete :data:`METADATA_FILES` small files; targets with less than twice ``size`` free, read-only or
duplicate file systems are skipped with the reason. Nothing is left behind.

:func:`benchmark_lock` serialises benchmarks on one machine (several hosts may share it): a file lock
in the temporary directory, waited for at most ``timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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
#: Most processes a multi-core kernel starts.
MAX_WORKERS: Final = 64
#: Seconds the workers of a multi-core kernel have to start (an interpreter each) before it gives up.
WORKER_START_TIMEOUT: Final = 30.0
#: Seconds a worker may take to exit once killed.
WORKER_EXIT_WAIT: Final = 5.0
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
    """``kernel`` in ``workers`` processes at once; the totals of all of them. Each worker is a fresh
    interpreter (``python -m paglets.examples.performance.kernels``; no fork, so it works on every OS and
    in a paglet process of either backend); all start the kernel together once every one is ready."""
    argv = [sys.executable, "-m", __name__, kernel, repr(duration)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    limit = time.monotonic() + WORKER_START_TIMEOUT + duration * 4
    children: list[tuple[subprocess.Popen[bytes], queue.Queue[bytes]]] = []
    operations = processed = 0
    try:
        for _ in range(workers):
            child = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
            )
            children.append((child, _lines(child)))
        for _child, lines in children:  # every worker has imported the kernels: start them at once
            if _next_line(lines, limit) != b"ready":
                raise OSError("a multi-core kernel worker did not start")
        began = time.perf_counter()
        for child, _lines_of in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            child.stdin.flush()
        for _child, lines in children:
            line = _next_line(lines, limit)
            if line:
                counted = json.loads(line)
                operations += int(counted[0])
                processed += int(counted[1])
        elapsed = time.perf_counter() - began
    finally:
        for child, _lines_of in children:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                if child.poll() is None:
                    child.kill()
                child.wait(WORKER_EXIT_WAIT)
            for stream in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
    return _result(f"{kernel}-multi", max(elapsed, duration), operations, processed)


def _lines(child: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    """The lines a worker prints, read by a thread (pipes cannot be waited on with a timeout everywhere);
    ``b""`` once it closed its output."""
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in child.stdout:
                lines.put(line.strip())
        lines.put(b"")

    threading.Thread(target=pump, name="kernel-worker-output", daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[bytes], limit: float) -> bytes:
    try:
        return lines.get(timeout=max(0.0, limit - time.monotonic()))
    except queue.Empty:
        return b""


def _worker(kernel: str, duration: float) -> int:
    """A multi-core kernel worker: says it is ready, waits for ``go`` (EOF: its parent is gone), runs the
    kernel and prints ``[operations, bytes]``."""
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    found = CPU_KERNELS[kernel](duration)
    print(json.dumps([found.operations, found.bytes_processed]), flush=True)
    return 0


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


if __name__ == "__main__":  # a multi-core kernel worker: ``python -m ... KERNEL DURATION``
    raise SystemExit(_worker(sys.argv[1], float(sys.argv[2])))
