"""What the ``compute-slots`` service measures: its host's capacity, and each leased job's usage.

Capacity (:func:`capacity`): the CPUs this process may run on (``sched_getaffinity``), memory, the file
system of the work directory, load and CPU use; a declared capacity (``--cpu-slots``, ``--memory-limit``,
``--scratch-limit`` or the service's ``launch.toml`` state) replaces the machine's numbers, so that several
hosts on one machine behave like several machines. Jobs are pinned to real CPU ids only when the slots
are the machine's own CPUs (declared slots do not name CPUs).

Usage (:class:`UsageSampler`): CPU percent and resident memory of a job's process tree and the bytes and
files under its work directory and the extra paths it names, each bounded: at most
:data:`MAX_TREE_PROCESSES` processes, :data:`MAX_SCAN_ENTRIES` directory entries and
:data:`SCAN_BUDGET` seconds per lease and sample; a scan cut short says so in ``usage_error``.

This module imports psutil at the top: only the service's paglet process imports it, on first use.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from paglets.services.builtin._scheduler import Capacity

__all__ = ["MAX_SCAN_ENTRIES", "SCAN_BUDGET", "Declared", "Usage", "UsageSampler", "capacity"]

#: Processes of one job's tree that are measured.
MAX_TREE_PROCESSES: Final = 256
#: Directory entries one usage scan visits per lease.
MAX_SCAN_ENTRIES: Final = 20_000
#: Seconds one usage scan may take per lease.
SCAN_BUDGET: Final = 0.5
#: Extra paths a job may name for measuring.
MAX_EXTRA_PATHS: Final = 16
#: Longest error text kept.
MAX_ERROR_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class Declared:
    """A declared capacity; 0 means "what the machine has"."""

    cpu_slots: int = 0
    memory_bytes: int = 0
    scratch_bytes: int = 0
    gpu_count: int = 0


def _error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text[:MAX_ERROR_CHARS]


def _cpu_ids() -> list[int]:
    getter = getattr(os, "sched_getaffinity", None)
    if getter is not None:
        try:
            return sorted(int(i) for i in getter(0))
        except OSError:
            pass
    return list(range(psutil.cpu_count(logical=True) or 1))


def capacity(
    *,
    host_name: str,
    host_url: str,
    work_dir_base: str,
    declared: Declared,
    pin: bool,
    health: dict[str, Any],
) -> Capacity:
    """This host's capacity now, with ``declared`` applied (see the module docstring)."""
    errors: list[str] = []
    machine_ids = _cpu_ids()
    cpu_count = psutil.cpu_count(logical=True) or len(machine_ids)
    if declared.cpu_slots > 0:
        ids = tuple(range(declared.cpu_slots))
        pinned = False
    else:
        ids = tuple(machine_ids)
        pinned = pin and hasattr(os, "sched_setaffinity")
    memory_total = memory_available = 0
    try:
        memory = psutil.virtual_memory()
        memory_total, memory_available = int(memory.total), int(memory.available)
    except Exception as exc:
        errors.append(f"memory: {_error(exc)}")
    if declared.memory_bytes > 0:
        memory_total = declared.memory_bytes
        memory_available = min(declared.memory_bytes, memory_available or declared.memory_bytes)
    work_total = work_free = 0
    try:
        Path(work_dir_base).mkdir(parents=True, exist_ok=True)
        usage = psutil.disk_usage(work_dir_base)
        work_total, work_free = int(usage.total), int(usage.free)
    except Exception as exc:
        errors.append(f"work disk: {_error(exc)}")
    if declared.scratch_bytes > 0:
        work_total = declared.scratch_bytes
        work_free = min(declared.scratch_bytes, work_free or declared.scratch_bytes)
    load: tuple[float, ...] = ()
    try:
        load = tuple(round(float(v), 4) for v in psutil.getloadavg())
    except Exception as exc:
        errors.append(f"load: {_error(exc)}")
    try:
        cpu_percent = float(psutil.cpu_percent(interval=None))
    except Exception as exc:
        cpu_percent = 0.0
        errors.append(f"cpu: {_error(exc)}")
    return Capacity(
        host_name=host_name,
        host_url=host_url.rstrip("/"),
        work_dir_base=work_dir_base,
        cpu_ids=ids,
        cpu_count_logical=cpu_count,
        pin=pinned,
        declared=bool(declared.cpu_slots or declared.memory_bytes or declared.scratch_bytes),
        memory_total=memory_total,
        memory_available=memory_available,
        work_total=work_total,
        work_free=work_free,
        load_average=load,
        cpu_percent=cpu_percent,
        gpu_count=declared.gpu_count,
        tags=tuple(str(t) for t in health.get("tags") or ()),
        properties={str(k): str(v) for k, v in dict(health.get("properties") or {}).items()},
        errors=tuple(errors),
    )


# --- usage ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """One sample of one job (current values)."""

    pid: int = 0
    process_status: str = ""
    cpu_percent: float = 0.0
    memory_rss_bytes: int = 0
    memory_percent: float = 0.0
    tree_count: int = 0
    tree_rss_bytes: int = 0
    work_dir_bytes: int = 0
    work_dir_files: int = 0
    extra_bytes: int = 0
    extra_files: int = 0
    error: str = ""


@dataclass(slots=True)
class _Tracked:
    process: Any
    children: dict[int, Any] = field(default_factory=dict)


class UsageSampler:
    """Samples jobs' process trees; keeps one ``psutil.Process`` per pid so CPU percent is measured
    between two samples (the first sample of a process reads 0)."""

    def __init__(self) -> None:
        self._tracked: dict[int, _Tracked] = {}

    def forget(self, pid: int) -> None:
        self._tracked.pop(pid, None)

    def sample(self, pid: int, work_dir: str, extra_paths: list[str]) -> Usage:
        usage = Usage(pid=pid)
        errors: list[str] = []
        if pid > 0:
            try:
                self._sample_tree(pid, usage)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                usage.process_status = "gone"
                self.forget(pid)
            except Exception as exc:
                errors.append(f"process: {_error(exc)}")
        deadline = time.monotonic() + SCAN_BUDGET
        if work_dir:
            size, files, error = directory_usage(Path(work_dir), deadline)
            usage.work_dir_bytes, usage.work_dir_files = size, files
            if error:
                errors.append(error)
        for raw in extra_paths[:MAX_EXTRA_PATHS]:
            size, files, error = directory_usage(Path(raw).expanduser(), deadline)
            usage.extra_bytes += size
            usage.extra_files += files
            if error:
                errors.append(error)
        usage.error = "; ".join(errors)[:MAX_ERROR_CHARS]
        return usage

    def _sample_tree(self, pid: int, usage: Usage) -> None:
        tracked = self._tracked.get(pid)
        if tracked is None:
            tracked = self._tracked[pid] = _Tracked(psutil.Process(pid))
        process = tracked.process
        with process.oneshot():
            usage.process_status = str(process.status())
            rss = int(process.memory_info().rss)
            usage.memory_percent = round(float(process.memory_percent()), 4)
        usage.memory_rss_bytes = rss
        cpu = float(process.cpu_percent(interval=None))
        total_rss, count = rss, 1
        seen: set[int] = set()
        try:
            children = process.children(recursive=True)[:MAX_TREE_PROCESSES]
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            children = []
        for child in children:
            seen.add(child.pid)
            known = tracked.children.setdefault(child.pid, child)
            try:
                total_rss += int(known.memory_info().rss)
                cpu += float(known.cpu_percent(interval=None))
                count += 1
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        for gone in set(tracked.children) - seen:
            del tracked.children[gone]
        usage.cpu_percent = round(cpu, 2)
        usage.tree_rss_bytes = total_rss
        usage.tree_count = count


def directory_usage(path: Path, deadline: float) -> tuple[int, int, str]:
    """(bytes, files, error) of the regular files under ``path`` (or of ``path`` itself), bounded by
    :data:`MAX_SCAN_ENTRIES` entries and ``deadline`` (monotonic); links are not followed."""
    total = files = visited = 0
    try:
        st = path.lstat()
    except FileNotFoundError:
        return 0, 0, ""
    except OSError as exc:
        return 0, 0, f"{path}: {_error(exc)}"
    if not path.is_dir() or path.is_symlink():
        return (st.st_size, 1, "") if path.is_file() else (0, 0, "")
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    visited += 1
                    if visited > MAX_SCAN_ENTRIES or time.monotonic() > deadline:
                        return total, files, f"{path}: scan stopped after {visited - 1} entries (partial)"
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                            files += 1
                    except OSError:
                        continue
        except FileNotFoundError:
            continue
        except OSError as exc:
            return total, files, f"{current}: {_error(exc)}"
    return total, files, ""
