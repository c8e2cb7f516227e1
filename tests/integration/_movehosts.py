"""Host processes that a test can SIGKILL and restart on the same port and directory (movement tests)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import HERE, children_of

from paglets.core.errors import PagletError
from paglets.http.client import HttpClient
from paglets.persistence._transfers import FILE_NAME, SLOT_SIZE, decode_slot


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HostProcess:
    """``_hostproc.py`` in a child process on a fixed port (so that a restart keeps its address)."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.doomed: set[int] = set()
        self.start()

    def start(self) -> None:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_hostproc.py"),
                self.name,
                str(self.directory),
                json.dumps({"port": self.port}),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:2] == ["READY", self.url], line
        self.proc = proc

    def kill(self) -> None:
        """SIGKILL the host; its process tree is recorded first (after the kill it has no children)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.doomed.update(children_of(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self._close_pipes(proc)

    def restart(self, while_down: Callable[[], None] | None = None) -> None:
        self.kill()
        if while_down is not None:
            while_down()
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in self.doomed):  # its paglets died with it
            assert time.monotonic() < deadline, "paglet processes outlived their host"
            time.sleep(0.01)
        self.start()

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None and proc.stdin is not None:
            proc.stdin.close()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close_pipes(proc)

    @staticmethod
    def _close_pipes(proc: subprocess.Popen[str]) -> None:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def copies(client: HttpClient, agent_id: str, *hosts: HostProcess) -> list[tuple[str, str]]:
    """``(host name, status)`` of every active copy of ``agent_id`` on the live ``hosts``."""
    found = []
    for host in hosts:
        if not host.alive:
            continue
        try:
            answer = client.request_json("GET", f"{host.url}/agents?state=all", timeout=10)
        except (PagletError, OSError):
            continue
        found.extend(
            (host.name, str(agent.get("status") or "ready"))
            for agent in answer.get("agents", [])
            if agent.get("agent_id") == agent_id and agent.get("active")
        )
    return found


def create_hopper(client: HttpClient, host: HostProcess, marks: Path, payload_size: int = 0) -> str:
    state: dict[str, Any] = {"marks": str(marks)}
    if payload_size:
        encoded = base64.b64encode(os.urandom(payload_size)).decode()
        state["payload"] = {"__paglets_binary__": "bytes", "base64": encoded}
    reply = client.request_json(
        "POST",
        f"{host.url}/agents",
        {
            "agent_class_name": "_move_paglets:Hopper",
            "state_class_name": "_move_paglets:HopState",
            "state": state,
        },
        timeout=30,
    )
    agent_id = str(reply["proxy"]["agent_id"])
    # create returns once run() was entered; its first mark follows (a loaded machine may take a while)
    deadline = time.monotonic() + 30
    while not marks_of(marks, agent_id):
        assert time.monotonic() < deadline, f"hopper {agent_id} left no mark within 30 s"
        time.sleep(0.01)
    return agent_id


def transfer_records(directory: Path) -> set[tuple[str, str]]:
    """``(transfer id, role)`` of the transfer records in a persistence directory (read from outside)."""
    path = directory / FILE_NAME
    if not path.exists():
        return set()
    data = path.read_bytes()
    newest: dict[tuple[str, str], int] = {}
    for start in range(SLOT_SIZE, len(data) - SLOT_SIZE + 1, SLOT_SIZE):
        try:
            decoded = decode_slot(data[start : start + SLOT_SIZE])
        except ValueError:
            continue
        if decoded is not None:
            record, sequence = decoded
            newest[record.key] = max(sequence, newest.get(record.key, 0))
    return set(newest)  # type: ignore[arg-type]


def executed_records(host: HostProcess) -> set[str]:
    """Transfer ids of the ``executed`` records in ``host``'s directory (read while it is down)."""
    return {tid for tid, role in transfer_records(host.directory) if role == "target"}


def marks_of(marks: Path, agent_id: str) -> list[tuple[int, str]]:
    """``(hop, host name)`` of every ``run()`` of ``agent_id`` so far, in hop order."""
    found = []
    for name in os.listdir(marks):
        agent, hop, host = name.split(".", 2)
        if agent == agent_id:
            found.append((int(hop), host))
    return sorted(found)
