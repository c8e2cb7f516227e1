"""Host processes started with the ``paglets-host`` CLI on loopback, joined into a mesh (issue: mesh)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HERE, wait_until

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy

FAST = ["--mesh-gossip-interval", "0.2", "--mesh-offline-after", "1.5", "--no-launch-config"]


class HostProcess:
    def __init__(self, tmp: Path, name: str, *extra: str, port: int = 0, version: str = "v1") -> None:
        self.name = name
        self.dir = tmp / name
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paglets.cli.host",
                "--name",
                name,
                "--port",
                str(port),
                "--persistence-dir",
                str(self.dir),
                "--mesh-version",
                version,
                *FAST,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline()
        assert banner.startswith(f"paglets host {name} serving on "), banner + self.proc.stderr.read()
        self.url = banner.split(" serving on ")[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[HostProcess]]:
    started: list[HostProcess] = []
    yield started
    for proc in started:
        proc.stop(signal.SIGKILL)


def _hosts(client: HostClient, url: str) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in client.get_json(url + "/hosts")["hosts"]}


def _online(client: HostClient, url: str) -> set[str]:
    return {name for name, h in _hosts(client, url).items() if h["online"]}


@pytest.mark.timeout(180)
def test_a_cli_mesh(procs: list[HostProcess], tmp_path: Path) -> None:
    client = HostClient(timeout=30)
    a = HostProcess(tmp_path, "a")
    procs.append(a)
    b = HostProcess(tmp_path, "b", "--peer", a.url)
    procs.append(b)
    c = HostProcess(tmp_path, "c", "--peer", b.url)
    procs.append(c)
    for url in (a.url, b.url, c.url):  # joining, transitively
        wait_until(lambda url=url: _online(client, url) == {"a", "b", "c"}, 20)

    other = HostProcess(tmp_path, "other", "--peer", a.url, version="v2")  # the version gate
    procs.append(other)
    wait_until(
        lambda: (
            "mesh-host-rejected"
            in {e["kind"] for e in client.get_json(a.url + "/events?limit=1000")["events"]}
        ),
        20,
    )
    assert "other" not in _hosts(client, a.url)

    # a service advertised on b is found from a paglet on a; a paglet moves to b by name
    adv = client.post_json(b.url + "/agents", {"agent_class_name": "_paglets:MeshAsker"})["proxy"]
    PagletProxy.from_wire(adv, client=client).send(Message("advertise_mesh", arg="summer"))
    asker = PagletProxy.from_wire(
        client.post_json(a.url + "/agents", {"agent_class_name": "_paglets:MeshAsker"})["proxy"],
        client=client,
    )
    assert asker.send(Message("hosts")) == ["a", "b", "c"]
    found = asker.send(Message("lookup_mesh", arg="summer"))
    assert found == {"host_url": b.url, "agent_id": adv["agent_id"]}
    moved = client.post_json(f"{a.url}/agents/{asker.agent_id}/dispatch", {"target": "b"})["proxy"]
    assert moved["host_url"] == b.url

    # a killed host goes offline within the window, and comes back after a restart on its port
    c.stop(signal.SIGKILL)
    wait_until(lambda: "c" not in _online(client, a.url), 15)
    c2 = HostProcess(tmp_path, "c", "--peer", b.url, port=c.port)
    procs.append(c2)
    wait_until(lambda: "c" in _online(client, a.url), 20)

    # SIGTERM keeps paglets: they come back after a restart on the same directory
    kept = client.post_json(b.url + "/agents", {"agent_class_name": "_paglets:Counter"})["proxy"]
    PagletProxy.from_wire(kept, client=client).send(Message("add", {"n": 41}))
    b.stop(signal.SIGTERM)
    b2 = HostProcess(tmp_path, "b", "--peer", a.url, port=b.port)
    procs.append(b2)
    wait_until(
        lambda: any(x["agent_id"] == kept["agent_id"] for x in client.get_json(b2.url + "/agents")["agents"]),
        20,
    )
    assert PagletProxy.from_wire(kept, client=client).send(Message("add")) == 42
    client.close()


def test_cli_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paglets.cli.host", *args], capture_output=True, text=True, timeout=60
        )

    assert "--name" in run("--help").stdout
    assert "not an http:// or https:// URL" in run("--name", "x", "--peer", "ftp://nowhere").stderr
    assert "not a size" in run("--name", "x", "--artifact-max-size", "12Q").stderr
    busy = HostProcess(tmp_path, "busy")
    try:
        out = run("--name", "y", "--port", str(busy.port), "--persistence-dir", str(tmp_path / "y"))
        assert out.returncode == 1
        assert "already in use" in out.stderr
    finally:
        busy.stop()


def test_sigterm_to_the_whole_process_group_keeps_paglets(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    command = [
        sys.executable,
        "-m",
        "paglets.cli.host",
        "--name",
        "g",
        "--port",
        "0",
        "--persistence-dir",
        str(tmp_path / "g"),
        "--mesh-version",
        "v1",
        "--no-launch-config",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    url = proc.stdout.readline().split(" serving on ")[1].split()[0]
    client = HostClient()
    kept = client.post_json(url + "/agents", {"agent_class_name": "_paglets:Counter"})["proxy"]
    PagletProxy.from_wire(kept, client=client).send(Message("add", {"n": 5}))
    os.killpg(proc.pid, signal.SIGTERM)  # as `timeout` or a service manager does to the whole group
    assert proc.wait(30) == 0
    proc.stdout.close()
    proc.stderr.close()
    again = HostProcess(tmp_path, "g")
    try:
        wait_until(
            lambda: any(
                a["agent_id"] == kept["agent_id"] for a in client.get_json(again.url + "/agents")["agents"]
            ),
            20,
        )
        assert (
            PagletProxy.from_wire({"host_url": again.url, "agent_id": kept["agent_id"]}, client=client).send(
                Message("add")
            )
            == 6
        )
    finally:
        again.stop()
        client.close()
