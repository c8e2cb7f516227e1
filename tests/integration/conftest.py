"""Fixtures for multi-process tests: real hosts, real paglet processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # paglet classes live in _paglets.py, imported by name in children

from paglets.runtime.host import Host  # noqa: E402


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


def children_of(pid: int) -> set[int]:
    """Pids of the live descendants of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        nxt = {child for child, parent in parents.items() if parent in frontier}
        nxt -= found
        found |= nxt
        frontier = nxt
    return found


def host_paglet_processes(host: Host) -> set[int]:
    """Pids of ``host``'s live paglet processes, whichever process backend it runs (below its zygote on
    Linux, below the host's own process with spare processes; titled with the host's name)."""
    parent = host.manager.backend.process_parent
    return paglet_processes(parent, host.name) if parent is not None else set()


def paglet_processes(pid: int, host_name: str | None = None) -> set[int]:
    """Pids of the live paglet processes below ``pid`` (titled ``paglet:<host>:<Class>:<id>``, of
    ``host_name`` when given); template and spare processes, waiting for work, are not paglets."""
    prefix = b"paglet:" if host_name is None else f"paglet:{host_name}:".encode()
    found: set[int] = set()
    for child in children_of(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                title = fh.read().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(prefix):
            found.add(child)
    return found


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """A factory of started hosts; every host is stopped at the end of the test."""
    hosts: list[Host] = []

    def make(name: str = "alpha", **options: object) -> Host:
        options.setdefault("persistence_dir", tmp_path / name)
        options.setdefault("mesh_lan_discovery", False)
        options.setdefault("mesh_multicast", False)
        if os.environ.get("PAGLETS_MIXED_MESH") == "1":  # every other host on the other process backend
            options.setdefault("process_backend", ("linux", "portable")[len(hosts) % 2])
        host = Host(name, **options)  # type: ignore[arg-type]
        host.start_background()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture
def host(make_host: Callable[..., Host]) -> Host:
    return make_host("alpha")
