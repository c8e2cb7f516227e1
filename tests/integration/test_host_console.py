"""``paglets-host`` as a new user runs it: started in the folder of their paglet module, telling on its
console what it does and what goes wrong in the mesh (real processes, real sockets on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import wait_until

from paglets.core.errors import PagletError, SerializationError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy

HOST_SCRIPT = Path(sys.executable).with_name("paglets-host")
FAST = ["--mesh-gossip-interval", "0.1", "--mesh-offline-after", "2", "--no-sync-launch-config"]

COUNTER = """\
import os
from dataclasses import dataclass

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class CounterState(PagletState):
    count: int = 0


class Counter(Paglet[CounterState]):
    State = CounterState

    def handle_message(self, msg: Message):
        if msg.kind == "add":
            self.state.count += msg.get_arg("n", 1)
            return self.state.count
        if msg.kind == "fail":
            raise ValueError("no such luck")
        if msg.kind == "exit":
            os._exit(3)
        return self.not_handled()
"""


class ConsoleHost:
    """One ``paglets-host`` process (the installed console script) with its console collected."""

    def __init__(self, tmp: Path, name: str, *extra: str, cwd: Path, version: str | None = "v1") -> None:
        assert HOST_SCRIPT.exists(), f"{HOST_SCRIPT} missing: install the package (pip install -e .)"
        self.name = name
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PAGLETS_MESH_VERSION")}
        env["HOME"] = str(tmp / "home")
        argv = [str(HOST_SCRIPT), "--name", name, "--port", "0", "--persistence-dir", str(tmp / name)]
        if version is not None:
            argv += ["--mesh-version", version]
        self.proc = subprocess.Popen(
            [*argv, *FAST, *extra],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=_collect, args=(stream, into), daemon=True).start()
        self.wait_out(lambda line: " serving on " in line)
        self.url = self.out[0].split(" serving on ")[1].split()[0]

    def wait_out(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        return self._wait(self.out, predicate, timeout)

    def wait_err(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        return self._wait(self.err, predicate, timeout)

    def _wait(self, lines: list[str], predicate: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(lines):
                if predicate(line):
                    return line
            if time.monotonic() > deadline or (self.proc.poll() is not None and not _more(lines)):
                raise AssertionError(f"{self.name}: no such line; stdout {self.out}, stderr {self.err}")
            time.sleep(0.01)

    def stop(self) -> list[str]:
        """SIGTERM, wait for the exit, return the whole console (stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, self.err
        wait_until(lambda: _closed(self.out) and _closed(self.err), 10)
        return self.err[:-1]


def _collect(stream: object, into: list[str]) -> None:
    assert stream is not None
    with stream:  # type: ignore[attr-defined]
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))  # noqa: PERF401 - others read it while it grows
    into.append("\0")  # end of stream


def _closed(lines: list[str]) -> bool:
    return bool(lines) and lines[-1] == "\0"


def _more(lines: list[str]) -> bool:
    return not _closed(lines)


@pytest.fixture
def hosts() -> Iterator[list[ConsoleHost]]:
    started: list[ConsoleHost] = []
    yield started
    for host in started:
        if host.proc.poll() is None:
            host.proc.kill()
            host.proc.wait(30)
        wait_until(lambda host=host: _closed(host.out) and _closed(host.err), 10)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "counter.py").write_text(COUNTER)
    return folder


def _create(client: HostClient, url: str) -> PagletProxy:
    reply = client.post_json(url + "/agents", {"agent_class_name": "counter:Counter"})
    return PagletProxy.from_wire(reply["proxy"], client=client)


def test_the_host_imports_paglet_modules_from_its_working_directory(
    tmp_path: Path, project: Path, hosts: list[ConsoleHost]
) -> None:
    hosts.append(alpha := ConsoleHost(tmp_path, "alpha", cwd=project))
    client = HostClient(timeout=30)
    try:
        proxy = _create(client, alpha.url)
        assert proxy.send(Message("add", {"n": 2})) == 2  # answered by a paglet process forked for it
        assert proxy.send(Message("add")) == 3
    finally:
        client.close()


def test_an_import_error_names_the_module_the_sys_path_head_and_the_fix(
    tmp_path: Path, project: Path, hosts: list[ConsoleHost]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hosts.append(beta := ConsoleHost(tmp_path, "beta", cwd=elsewhere))
    client = HostClient(timeout=30)
    try:
        with pytest.raises(SerializationError) as info:
            _create(client, beta.url)
    finally:
        client.close()
    text = str(info.value)
    assert "cannot import module 'counter' for class 'counter:Counter'" in text, text
    assert f"sys.path = [{elsewhere}, " in text, text
    assert "Start the host in the folder that holds counter.py" in text, text
    assert "add that folder to PYTHONPATH" in text, text


def test_the_console_says_what_the_host_does(tmp_path: Path, project: Path, hosts: list[ConsoleHost]) -> None:
    hosts.append(alpha := ConsoleHost(tmp_path, "alpha", cwd=project))
    started = alpha.wait_err(lambda line: "host alpha started: " in line)
    assert "resident services: none; restored 0 paglets, 0 inactive" in started, started
    client = HostClient(timeout=30)
    try:
        keeper, doomed = _create(client, alpha.url), _create(client, alpha.url)
        with pytest.raises(PagletError, match="no such luck"):
            keeper.send(Message("fail"))
        line = alpha.wait_err(lambda line: "raised" in line)
        assert line.endswith(
            f"warning: Counter {keeper.agent_id[:8]}: handler for 'fail' raised ValueError: no such luck"
        )
        with pytest.raises(PagletError, match="no host named 'zeta'"):
            keeper.dispatch("zeta")
        line = alpha.wait_err(lambda line: "moving paglet" in line)
        assert f"warning: moving paglet {keeper.agent_id[:8]} failed (resolve): no host named 'zeta'" in line
        with pytest.raises(PagletError):
            doomed.send(Message("exit"))
        line = alpha.wait_err(lambda line: "crashed" in line)
        assert line.endswith(
            f"warning: paglet Counter {doomed.agent_id[:8]} crashed: process exited with code 3"
        )
    finally:
        client.close()
    console = alpha.stop()
    assert any(line.endswith("host alpha stopped; saved 1 paglet") for line in console), console
    assert sum("crashed" in line for line in console) == 1, console  # once, not once per logger

    # the saved paglet comes back at the next start, and -q keeps only warnings
    hosts.append(again := ConsoleHost(tmp_path, "alpha", "-q", cwd=project))
    client = HostClient(timeout=30)
    try:
        wait_until(lambda: len(client.get_json(again.url + "/agents")["agents"]) == 1)
    finally:
        client.close()
    quiet = again.stop()
    assert quiet == [], quiet

    hosts.append(third := ConsoleHost(tmp_path, "alpha", "--relay-queue-limit", "5", cwd=project))
    line = third.wait_err(lambda line: "host alpha started: " in line)
    assert "restored 1 paglet, 0 inactive" in line, line
    console = third.stop()
    assert not any("relay" in line for line in console), console


class DeadPeer:
    """A TCP port where every connection is closed at once: a ``--peer`` that never answers.
    Counts the connections, so a test knows how many heartbeats reached it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_the_console_reports_mesh_trouble_once(
    tmp_path: Path, project: Path, hosts: list[ConsoleHost]
) -> None:
    dead = DeadPeer()
    try:
        # alpha: no --mesh-version (a warning says so); beta: another version, joins alpha (409)
        hosts.append(alpha := ConsoleHost(tmp_path, "alpha", "--peer", dead.url, cwd=project, version=None))
        hosts.append(
            beta := ConsoleHost(tmp_path, "beta", "--peer", alpha.url, "--peer", dead.url, cwd=project)
        )
        # many heartbeats later (each host retries the dead peer with backoff)...
        wait_until(lambda: dead.accepted >= 10, 60)
        beta.wait_err(lambda line: "refused" in line)
        alpha.wait_err(lambda line: "refused" in line)
    finally:
        dead.close()
    a, b = alpha.stop(), beta.stop()
    # ...each kind of trouble is one line on each console
    warn = [line for line in a if "no --mesh-version given" in line]
    assert len(warn) == 1, a
    assert "warning: no --mesh-version given: this host uses code version " in warn[0]
    assert "start every host of the mesh with the same --mesh-version" in warn[0]
    for console in (a, b):
        unreachable = [line for line in console if f"mesh peer {dead.url} is unreachable" in line]
        assert len(unreachable) == 1, console
        assert "(retrying with backoff)" in unreachable[0]
    refused_b = [line for line in b if "refused" in line]
    assert len(refused_b) == 1, b
    assert f"mesh peer alpha at {alpha.url} refused: it runs code version '" in refused_b[0]
    assert "this host 'v1'" in refused_b[0]
    refused_a = [line for line in a if "refused" in line]
    assert len(refused_a) == 1, a
    assert f"mesh peer beta at {beta.url} refused: it runs code version 'v1'" in refused_a[0]
    assert not [line for line in b if "no --mesh-version" in line], b
