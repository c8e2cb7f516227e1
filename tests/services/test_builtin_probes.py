"""The probes behind server-info and mesh-info: real psutil readings, real files and real subprocesses."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from paglets.services.builtin import _probes
from paglets.services.builtin.server_info import DiskRequest, LoadRequest, ProcessListRequest


def test_load_reports_memory_cpu_and_load() -> None:
    reply = _probes.load(LoadRequest(interval=0.0, include_gpu=False), "h", "http://127.0.0.1:1")
    assert reply.host_name == "h"
    assert reply.memory_total_bytes > 0
    assert 0 <= reply.memory_percent <= 100
    assert 0 <= reply.cpu_percent <= 100
    assert reply.cpu_count_logical >= 1
    assert len(reply.load_average) == 3
    assert reply.gpu_error == "not requested"
    assert reply.errors == {}


def test_cpu_interval_is_bounded() -> None:
    # a request for a minute of sampling may hold the service for at most MAX_CPU_INTERVAL
    assert _probes.MAX_CPU_INTERVAL <= 5.0
    reply = _probes.load(LoadRequest(interval=0.05, include_gpu=False), "h", "u")
    assert 0 <= reply.cpu_percent <= 100


def _fake_tool(directory: Path, body: str) -> None:
    tool = directory / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + body + "\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_gpu_missing_tool_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _probes.gpu_info() == ([], "nvidia-smi not found")
    reply = _probes.load(LoadRequest(include_gpu=True), "h", "u")
    assert reply.gpu_available is False
    assert reply.gpu_error == "nvidia-smi not found"


def test_gpu_output_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(
        tmp_path, "echo '0, Tesla T4, 37, 1200, 15360'\necho 'garbage line'\necho '1, A100, [N/A], 10, 40960'"
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    gpus, error = _probes.gpu_info()
    assert error is None
    assert [(g.index, g.name, g.utilization_percent) for g in gpus] == [
        (0, "Tesla T4", 37.0),
        (1, "A100", None),
    ]
    assert gpus[1].memory_total_mb == 40960.0


def test_gpu_failure_and_hang_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sleep = shutil.which("sleep")
    _fake_tool(tmp_path, "echo 'NVIDIA-SMI has failed: no driver' >&2\nexit 9")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _probes.gpu_info() == ([], "NVIDIA-SMI has failed: no driver")
    _fake_tool(tmp_path, f"exec {sleep} 30")
    assert _probes.gpu_info(timeout=0.3) == ([], "nvidia-smi did not answer within 0.3 s")


def test_df_reports_each_bad_path_and_keeps_the_good_ones(tmp_path: Path) -> None:
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    request = DiskRequest(
        paths=[str(tmp_path), str(tmp_path / "missing"), f"{a_file}/below", "bad\x00path", ""]
    )
    reply = _probes.disk(request, "h", "u")
    assert [v.path for v in reply.volumes] == [str(tmp_path)]
    volume = reply.volumes[0]
    assert volume.total_bytes > 0
    assert volume.free_bytes > 0
    assert volume.used_bytes + volume.free_bytes <= volume.total_bytes
    assert reply.errors[str(tmp_path / "missing")] == "No such file or directory"
    assert reply.errors[f"{a_file}/below"] == "Not a directory"
    assert reply.errors["bad\x00path"] == "not a valid path"
    assert reply.errors["''"] == "not a valid path"


def test_df_without_paths_lists_root_first() -> None:
    reply = _probes.disk(DiskRequest(), "h", "u")
    assert reply.volumes, reply.errors
    assert reply.volumes[0].path == "/"
    assert len({v.path for v in reply.volumes}) == len(reply.volumes)
    only_root = _probes.disk(DiskRequest(all_volumes=False), "h", "u")
    assert [v.path for v in only_root.volumes] == ["/"]


def test_df_bounds_the_number_of_paths(tmp_path: Path) -> None:
    paths = [str(tmp_path)] * (_probes.MAX_DISK_PATHS + 10)
    reply = _probes.disk(DiskRequest(paths=paths), "h", "u")
    assert len(reply.volumes) == _probes.MAX_DISK_PATHS
    assert "only the first" in reply.errors["paths"]


def test_df_gives_up_on_a_hanging_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """statvfs of a dead network mount blocks in the kernel: the reply comes anyway, with the reason."""
    release = threading.Event()
    real = _probes.shutil.disk_usage

    def disk_usage(path: str) -> object:
        if path == "/hangs":
            release.wait(30)
        return real(path)

    monkeypatch.setattr(_probes.shutil, "disk_usage", disk_usage)
    try:
        reply = _probes.disk(DiskRequest(paths=["/hangs", str(tmp_path)]), "h", "u", timeout=0.3)
    finally:
        release.set()
    assert reply.errors["/hangs"].startswith("no answer within 0.3 s")
    assert [v.path for v in reply.volumes] == [str(tmp_path)]


def test_ps_finds_a_process_by_command_line_even_past_the_cut() -> None:
    marker = f"paglets-ps-probe-{os.getpid()}"
    padding = "x" * (_probes.MAX_CMDLINE_CHARS + 10)
    code = "import sys, time; sys.stdin.read()"
    children = [
        subprocess.Popen([sys.executable, "-c", code, marker], stdin=subprocess.PIPE),
        subprocess.Popen([sys.executable, "-c", code, padding, marker], stdin=subprocess.PIPE),
    ]
    try:
        deadline = time.monotonic() + 10.0
        while True:
            reply = _probes.processes(
                ProcessListRequest(query=marker, limit=500, include_args=True), "h", "u"
            )
            if reply.matched >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sorted(p.pid for p in reply.processes) == sorted(c.pid for c in children)
        by_pid = {p.pid: p for p in reply.processes}
        assert marker in by_pid[children[0].pid].cmdline
        # The long command line comes back cut, but it still matched on its whole text.
        cut = by_pid[children[1].pid].cmdline
        assert cut[-1] == "..."
        assert marker not in cut
        assert all(p.memory_rss_bytes >= 0 for p in reply.processes)
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=10)


def test_ps_is_sorted_by_memory_and_bounded() -> None:
    # a running system always has more than two processes (this one, its parent, init)
    reply = _probes.processes(ProcessListRequest(query="", limit=2), "h", "u")
    assert len(reply.processes) == 2
    assert reply.truncated
    assert reply.matched > 2
    assert reply.processes[0].memory_rss_bytes >= reply.processes[1].memory_rss_bytes
    assert all(p.cmdline == [] for p in reply.processes)  # only with include_args
    huge = _probes.processes(ProcessListRequest(query="", limit=10**9), "h", "u")
    assert len(huge.processes) <= _probes.MAX_PS_LIMIT


def test_ps_query_and_scan_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    long = "x" * (_probes.MAX_QUERY + 50)
    reply = _probes.processes(ProcessListRequest(query=long), "h", "u")
    assert len(reply.query) == _probes.MAX_QUERY
    assert "query" in reply.errors
    assert reply.processes == []
    monkeypatch.setattr(_probes, "PS_SCAN_BUDGET", -1.0)
    stopped = _probes.processes(ProcessListRequest(query=""), "h", "u")
    assert "stopped after" in stopped.errors["scan"]


def test_summary() -> None:
    reply = _probes.summary("h", "u", service_agent_id="service.server-info")
    assert reply.cpu_count_logical >= 1
    assert reply.memory_total_bytes > 0
    assert reply.boot_time > 0
    assert reply.python_version.count(".") == 2
    assert reply.service_agent_id == "service.server-info"
    assert reply.errors == {}
