"""System probes behind ``server-info`` and ``mesh-info``, built on psutil, each bounded and fail-soft.

Every function returns a reply even when a probe fails: the failure goes into the reply's ``errors``
(probe name or path → message). Bounds, each a named constant below:

- disk usage runs in helper threads with a deadline (:data:`DISK_TIMEOUT`), because ``statvfs`` of a
  dead network mount can block forever; at most :data:`MAX_HUNG_DISK_PROBES` such threads may be stuck
  before new probes are refused;
- the process scan stops after :data:`PS_SCAN_BUDGET` seconds and returns at most :data:`MAX_PS_LIMIT`
  processes, with command lines cut to :data:`MAX_CMDLINE_CHARS`;
- ``nvidia-smi`` gets :data:`GPU_TIMEOUT` seconds and at most :data:`MAX_GPUS` lines are read.

This module imports psutil at the top: only paglet processes of the services import it, on first use.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psutil

from paglets import __version__
from paglets.services.builtin.server_info import (
    DiskReply,
    DiskRequest,
    DiskUsageInfo,
    GpuInfo,
    LoadReply,
    LoadRequest,
    ProcessInfo,
    ProcessListReply,
    ProcessListRequest,
    SummaryReply,
)

__all__ = [
    "DISK_TIMEOUT",
    "GPU_TIMEOUT",
    "MAX_CPU_INTERVAL",
    "MAX_DISK_PATHS",
    "MAX_PS_LIMIT",
    "MAX_QUERY",
    "PS_SCAN_BUDGET",
    "disk",
    "gpu_info",
    "load",
    "processes",
    "summary",
]

#: Longest CPU sampling interval a ``load`` call may ask for: the call holds the service for that long.
MAX_CPU_INTERVAL: Final = 5.0
#: Sampling interval used when nothing was sampled before (psutil's first reading is meaningless).
FIRST_CPU_INTERVAL: Final = 0.1
#: Seconds ``nvidia-smi`` may run. It answers in well under a second on a healthy machine.
GPU_TIMEOUT: Final = 2.0
#: GPUs read from ``nvidia-smi`` (large servers have 8-16).
MAX_GPUS: Final = 64
#: Longest error text kept from a failing tool or probe.
MAX_ERROR_CHARS: Final = 300
#: Paths one ``df`` request may name.
MAX_DISK_PATHS: Final = 64
#: Volumes one ``df`` reply lists when every mounted volume is asked for.
MAX_VOLUMES: Final = 256
#: Longest path accepted in a ``df`` request.
MAX_PATH_CHARS: Final = 4096
#: Seconds all disk probes of one request may take together (a dead NFS mount blocks ``statvfs``).
DISK_TIMEOUT: Final = 2.0
#: Disk probe threads that may be stuck in the kernel before new probes are refused.
MAX_HUNG_DISK_PROBES: Final = 16
#: File systems that are never volumes a user means (snap images, kernel views).
PSEUDO_FSTYPES: Final = frozenset({"squashfs", "tmpfs", "devtmpfs", "proc", "sysfs", "overlay", "nsfs"})
#: Most processes one ``ps`` reply lists.
MAX_PS_LIMIT: Final = 500
#: Longest ``ps`` query.
MAX_QUERY: Final = 256
#: Seconds one process scan may take (thousands of processes take well under one).
PS_SCAN_BUDGET: Final = 3.0
#: Interval over which the listed processes' CPU use is measured.
PS_CPU_INTERVAL: Final = 0.1
#: Longest command line kept per process (characters, all arguments together).
MAX_CMDLINE_CHARS: Final = 4096

_cpu_lock = threading.Lock()
_cpu_sampled = False
_hung_lock = threading.Lock()
_hung_disk_probes = 0


def _error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text[:MAX_ERROR_CHARS]


# --- load -----------------------------------------------------------------------------------------------


def cpu_percent(interval: float = 0.0) -> float:
    """System-wide CPU percent over ``interval`` seconds, or since the previous call (first call: 0.1 s)."""
    global _cpu_sampled
    wait = min(max(0.0, float(interval)), MAX_CPU_INTERVAL)
    with _cpu_lock:
        if wait == 0.0 and not _cpu_sampled:
            wait = FIRST_CPU_INTERVAL
        _cpu_sampled = True
        return float(psutil.cpu_percent(interval=wait or None))


def load_average() -> list[float]:
    return [round(float(v), 4) for v in psutil.getloadavg()]


def load(request: LoadRequest, host_name: str, host_url: str) -> LoadReply:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    try:
        values["cpu_percent"] = cpu_percent(request.interval)
    except Exception as exc:
        errors["cpu"] = _error(exc)
    try:
        values["cpu_count_logical"] = int(psutil.cpu_count(logical=True) or 0)
    except Exception as exc:
        errors["cpu_count"] = _error(exc)
    try:
        values["load_average"] = load_average()
    except Exception as exc:
        errors["load_average"] = _error(exc)
    try:
        memory = psutil.virtual_memory()
        values.update(
            memory_total_bytes=int(memory.total),
            memory_used_bytes=int(memory.used),
            memory_available_bytes=int(memory.available),
            memory_percent=float(memory.percent),
        )
    except Exception as exc:
        errors["memory"] = _error(exc)
    try:
        swap = psutil.swap_memory()
        values.update(
            swap_total_bytes=int(swap.total), swap_used_bytes=int(swap.used), swap_percent=float(swap.percent)
        )
    except Exception as exc:
        errors["swap"] = _error(exc)
    gpus: list[GpuInfo] = []
    gpu_error: str | None = "not requested"
    if request.include_gpu:
        gpus, gpu_error = gpu_info()
    return LoadReply(
        host_name=host_name,
        host_url=host_url,
        gpu_available=bool(gpus),
        gpu_error=gpu_error,
        gpus=gpus,
        errors=errors,
        **values,
    )


def gpu_info(timeout: float = GPU_TIMEOUT) -> tuple[list[GpuInfo], str | None]:
    """GPUs reported by ``nvidia-smi``, or an empty list and the reason there are none."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return [], "nvidia-smi not found"
    query = "index,name,utilization.gpu,memory.used,memory.total"
    try:
        done = subprocess.run(
            [binary, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], f"nvidia-smi did not answer within {timeout:g} s"
    except OSError as exc:
        return [], f"nvidia-smi failed: {_error(exc)}"
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        return [], (message[0] if message else f"nvidia-smi exited with {done.returncode}")[:MAX_ERROR_CHARS]
    gpus: list[GpuInfo] = []
    for line in done.stdout.splitlines()[:MAX_GPUS]:
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 5:
            continue
        gpus.append(
            GpuInfo(
                index=_int(parts[0], len(gpus)),
                name=parts[1][:200],
                utilization_percent=_float(parts[2]),
                memory_used_mb=_float(parts[3]),
                memory_total_mb=_float(parts[4]),
            )
        )
    return gpus, None if gpus else "no GPUs reported by nvidia-smi"


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --- disks ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _DiskProbe:
    path: str
    device: str = ""
    fstype: str = ""
    usage: Any = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _run_disk_probe(probe: _DiskProbe) -> None:
    global _hung_disk_probes
    try:
        probe.usage = shutil.disk_usage(probe.path)
    except Exception as exc:
        probe.error = _error(exc)
    finally:
        probe.done.set()
        with _hung_lock:
            _hung_disk_probes -= 1


def _volumes(errors: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(mountpoint, device, fstype)`` of the mounted volumes, ``/`` first, one per device."""
    found: list[tuple[str, str, str]] = []
    try:
        partitions = psutil.disk_partitions(all=False)
    except Exception as exc:
        errors["partitions"] = _error(exc)
        partitions = []
    seen_devices: set[str] = set()
    seen_paths: set[str] = set()
    for part in sorted(partitions, key=lambda p: (p.mountpoint != "/", p.mountpoint)):
        if not part.mountpoint or (part.fstype in PSEUDO_FSTYPES and part.mountpoint != "/"):
            continue
        if part.mountpoint in seen_paths or (part.device and part.device in seen_devices):
            continue
        seen_paths.add(part.mountpoint)
        if part.device:
            seen_devices.add(part.device)
        found.append((part.mountpoint, part.device, part.fstype))
    if "/" not in seen_paths and os.name != "nt":
        found.insert(0, ("/", "", ""))
    return found[:MAX_VOLUMES]


def disk(request: DiskRequest, host_name: str, host_url: str, *, timeout: float = DISK_TIMEOUT) -> DiskReply:
    global _hung_disk_probes
    errors: dict[str, str] = {}
    targets: list[tuple[str, str, str]]
    if request.paths:
        targets = []
        for raw in request.paths[:MAX_DISK_PATHS]:
            path = str(raw)
            if not path or len(path) > MAX_PATH_CHARS or "\x00" in path:
                errors[path[:80] or "''"] = "not a valid path"
                continue
            targets.append((os.path.expanduser(path), "", ""))
        if len(request.paths) > MAX_DISK_PATHS:
            errors["paths"] = f"only the first {MAX_DISK_PATHS} paths were checked"
    elif request.all_volumes:
        targets = _volumes(errors)
    else:
        targets = [(os.path.abspath(os.sep), "", "")]
    probes: list[_DiskProbe] = []
    for path, device, fstype in targets:
        probe = _DiskProbe(path, device, fstype)
        with _hung_lock:
            refused = _hung_disk_probes >= MAX_HUNG_DISK_PROBES
            if not refused:
                _hung_disk_probes += 1
        if refused:
            probe.error = "not checked: earlier disk probes on this host are still hanging"
            probe.done.set()
        else:
            threading.Thread(target=_run_disk_probe, args=(probe,), name="paglets-df", daemon=True).start()
        probes.append(probe)
    deadline = time.monotonic() + timeout
    volumes: list[DiskUsageInfo] = []
    for probe in probes:
        if not probe.done.wait(max(0.0, deadline - time.monotonic())):
            errors[probe.path] = f"no answer within {timeout:g} s (unresponsive file system?)"
            continue
        if probe.error is not None:
            errors[probe.path] = probe.error
            continue
        usage = probe.usage
        percent = usage.used / usage.total * 100.0 if usage.total else 0.0
        volumes.append(
            DiskUsageInfo(
                path=probe.path,
                total_bytes=int(usage.total),
                used_bytes=int(usage.used),
                free_bytes=int(usage.free),
                percent_used=round(percent, 2),
                device=probe.device,
                fstype=probe.fstype,
            )
        )
    return DiskReply(host_name=host_name, host_url=host_url, volumes=volumes, errors=errors)


# --- processes ------------------------------------------------------------------------------------------

_PS_ATTRS: Final = ["pid", "name", "cmdline", "status", "username", "memory_info"]


def processes(request: ProcessListRequest, host_name: str, host_url: str) -> ProcessListReply:
    query_text = str(request.query)[:MAX_QUERY]
    query = query_text.casefold()
    limit = max(1, min(int(request.limit), MAX_PS_LIMIT))
    errors: dict[str, str] = {}
    if len(request.query) > MAX_QUERY:
        errors["query"] = f"query cut to {MAX_QUERY} characters"
    try:
        total_memory = float(psutil.virtual_memory().total) or 1.0
    except Exception as exc:
        errors["memory"] = _error(exc)
        total_memory = 1.0
    own_pid = os.getpid()
    matches: list[tuple[int, psutil.Process, dict[str, Any]]] = []
    stop_at = time.monotonic() + PS_SCAN_BUDGET
    try:
        for process in psutil.process_iter(_PS_ATTRS, ad_value=None):
            if time.monotonic() > stop_at:
                errors["scan"] = f"stopped after {PS_SCAN_BUDGET:g} s; the list may be incomplete"
                break
            info = process.info
            if info.get("pid") == own_pid:
                continue
            name = str(info.get("name") or "")
            cmdline = [str(a) for a in info.get("cmdline") or ()]
            if query and query not in name.casefold() and query not in " ".join(cmdline).casefold():
                continue
            memory = info.get("memory_info")
            rss = int(getattr(memory, "rss", 0) or 0)
            matches.append((rss, process, info))
    except Exception as exc:
        errors["scan"] = _error(exc)
    matches.sort(key=lambda item: item[0], reverse=True)
    chosen = matches[:limit]
    cpu = _process_cpu([process for _, process, _ in chosen])
    listed: list[ProcessInfo] = []
    for rss, process, info in chosen:
        cmdline = [str(a) for a in info.get("cmdline") or ()] if request.include_args else []
        listed.append(
            ProcessInfo(
                pid=int(info.get("pid") or process.pid),
                name=str(info.get("name") or "")[:256] or "?",
                status=str(info.get("status") or "?"),
                username=str(info.get("username") or "?")[:64],
                cpu_percent=cpu.get(process.pid, 0.0),
                memory_rss_bytes=rss,
                memory_percent=round(rss / total_memory * 100.0, 2),
                cmdline=_cut(cmdline),
            )
        )
    return ProcessListReply(
        host_name=host_name,
        host_url=host_url,
        query=query_text,
        processes=listed,
        truncated=len(matches) > limit,
        matched=len(matches),
        errors=errors,
    )


def _process_cpu(chosen: list[psutil.Process]) -> dict[int, float]:
    """CPU percent of each process over :data:`PS_CPU_INTERVAL` (processes that vanish are left out)."""
    primed: list[psutil.Process] = []
    for process in chosen:
        try:
            process.cpu_percent(interval=None)
            primed.append(process)
        except (psutil.Error, OSError):
            continue
    if not primed:
        return {}
    time.sleep(PS_CPU_INTERVAL)
    result: dict[int, float] = {}
    for process in primed:
        try:
            result[process.pid] = round(float(process.cpu_percent(interval=None)), 1)
        except (psutil.Error, OSError):
            continue
    return result


def _cut(cmdline: list[str]) -> list[str]:
    kept: list[str] = []
    room = MAX_CMDLINE_CHARS
    for arg in cmdline:
        if room <= 0:
            kept.append("...")
            break
        kept.append(arg[:room])
        room -= len(arg) + 1
    return kept


# --- summary --------------------------------------------------------------------------------------------


def summary(host_name: str, host_url: str, *, service_agent_id: str = "") -> SummaryReply:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    try:
        values["platform"] = platform.platform()
    except Exception as exc:
        errors["platform"] = _error(exc)
    try:
        values["boot_time"] = float(psutil.boot_time())
    except Exception as exc:
        errors["boot_time"] = _error(exc)
    try:
        values["cpu_count_logical"] = int(psutil.cpu_count(logical=True) or 0)
        values["cpu_count_physical"] = psutil.cpu_count(logical=False)
    except Exception as exc:
        errors["cpu_count"] = _error(exc)
    try:
        values["memory_total_bytes"] = int(psutil.virtual_memory().total)
    except Exception as exc:
        errors["memory"] = _error(exc)
    return SummaryReply(
        host_name=host_name,
        host_url=host_url,
        python_version=platform.python_version(),
        service_agent_id=service_agent_id,
        hostname=socket.gethostname(),
        paglets_version=__version__,
        errors=errors,
        **values,
    )
