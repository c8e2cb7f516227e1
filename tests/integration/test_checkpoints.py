"""Checkpoints: an active paglet's state saved while it runs, restored after its host is SIGKILLed.

Real host processes (``_hostproc.py`` on a fixed port and persistence directory) are killed with SIGKILL
and restarted on the same directory:

- a checkpointed paglet comes back with the checkpointed state (not the later, unsaved one), marked in its
  ``activate`` event and in the request its ``on_activation`` hook sees; the route needs the API key;
- a disposed paglet and a paglet that moved to another host are not brought back (one copy only);
- the periodic policy (the host's default, a class's ``checkpoint_every``, a class that opts out);
- a checkpoint that cannot be written (a full file system) is reported as ``checkpoint-failed`` and the
  paglet keeps running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _movehosts import HostProcess, copies
from conftest import HERE, wait_until

from paglets.core.errors import PagletError
from paglets.http.client import HttpClient

KEY = "checkpoint-test-key"


class OptionsHost(HostProcess):
    """``HostProcess`` with ``Host`` options, optionally started under a command prefix."""

    def __init__(self, name: str, directory: Path, options: dict[str, Any], prefix: list[str] | None = None):
        self.options = options
        self.prefix = prefix or []
        super().__init__(name, directory)

    def start(self) -> None:
        command = [sys.executable, str(HERE / "_hostproc.py"), self.name, str(self.directory)]
        command.append(json.dumps({"port": self.port, **self.options}))
        if self.prefix:
            # the last part of the prefix is a shell command that ends with ``exec``: the host follows it
            command = [*self.prefix[:-1], self.prefix[-1] + " " + " ".join(f"'{part}'" for part in command)]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:2] == ["READY", self.url], line
        self.proc = proc


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with HttpClient(api_key=KEY) as http:
        yield http


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[HostProcess]]:
    started: list[HostProcess] = []
    yield started
    for host in started:
        host.stop()


def _host(hosts: list[HostProcess], name: str, directory: Path, **options: Any) -> OptionsHost:
    host = OptionsHost(name, directory, {"api_key": KEY, **options})
    hosts.append(host)
    return host


def _create(client: HttpClient, host: HostProcess, cls: str = "Tally") -> str:
    reply = client.request_json(
        "POST",
        f"{host.url}/agents",
        {"agent_class_name": f"_ckpt_paglets:{cls}", "state_class_name": "_ckpt_paglets:TallyState"},
        timeout=30,
    )
    return str(reply["proxy"]["agent_id"])


def _send(client: HttpClient, host: HostProcess, agent_id: str, kind: str, arg: Any = None) -> Any:
    reply = client.request_json(
        "POST", f"{host.url}/agents/{agent_id}/messages", {"message": {"kind": kind, "arg": arg}}, timeout=30
    )
    return reply["result"]


def _checkpoint(client: HttpClient, host: HostProcess, agent_id: str) -> dict[str, Any]:
    return dict(client.request_json("POST", f"{host.url}/agents/{agent_id}/checkpoint", {}, timeout=60))


def _events(
    client: HttpClient, host: HostProcess, kind: str, agent_id: str | None = None
) -> list[dict[str, Any]]:
    answer = client.request_json("GET", f"{host.url}/events?since=0&limit=1000", timeout=10)
    return [
        e
        for e in answer["events"]
        if e["kind"] == kind and (agent_id is None or e.get("agent_id") == agent_id)
    ]


def _checkpoint_files(directory: Path) -> list[str]:
    folder = directory / "checkpoints"
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".rec") if folder.is_dir() else []


def _listed(client: HttpClient, host: HostProcess) -> set[str]:
    answer = client.request_json("GET", f"{host.url}/agents?state=all", timeout=10)
    return {str(a["agent_id"]) for a in answer["agents"]}


def test_restored_from_its_checkpoint_after_a_crash(tmp_path: Path, client: HttpClient, hosts: list) -> None:
    alpha = _host(hosts, "alpha", tmp_path / "alpha")
    agent_id = _create(client, alpha)
    assert _send(client, alpha, agent_id, "add", 5) == 5
    with HttpClient() as anonymous, pytest.raises(PagletError) as refused:
        anonymous.request_json("POST", f"{alpha.url}/agents/{agent_id}/checkpoint", {}, timeout=10)
    assert getattr(refused.value, "status", 401) == 401
    reply = _checkpoint(client, alpha, agent_id)
    assert reply["agent_id"] == agent_id
    assert reply["state_bytes"] > 0
    assert len(_checkpoint_files(alpha.directory)) == 1
    assert _send(client, alpha, agent_id, "add", 3) == 8  # after the checkpoint: lost with the crash
    alpha.restart()
    assert _listed(client, alpha) == {agent_id}
    assert _send(client, alpha, agent_id, "count") == 5
    assert _send(client, alpha, agent_id, "activations") == ["checkpoint"]
    (activated,) = _events(client, alpha, "activate", agent_id)
    assert activated["data"]["restored_from_checkpoint"] is True
    assert activated["data"]["checkpoint_at"] == pytest.approx(reply["checkpoint_at"])
    assert _checkpoint_files(alpha.directory) == []  # it lives again: its record is gone
    # an inactive paglet has nothing to checkpoint
    client.request_json("POST", f"{alpha.url}/agents/{agent_id}/deactivate", {}, timeout=30)
    with pytest.raises(PagletError, match="inactive"):
        _checkpoint(client, alpha, agent_id)


def test_waiting_messages_are_part_of_the_checkpoint(tmp_path: Path, client: HttpClient, hosts: list) -> None:
    """The messages waiting in the mailbox when the snapshot is taken are restored after it, in order."""
    alpha = _host(hosts, "alpha", tmp_path / "alpha")
    agent_id = _create(client, alpha)
    _send(client, alpha, agent_id, "grow", 8 << 20)  # a large state: the snapshot takes a while
    for _ in range(50):
        client.request_json(
            "POST",
            f"{alpha.url}/agents/{agent_id}/messages",
            {"message": {"kind": "add", "arg": 1}, "oneway": True},
            timeout=10,
        )
    reply = _checkpoint(client, alpha, agent_id)
    done = _send(client, alpha, agent_id, "count")
    assert done == 50
    alpha.restart()
    wait_until(lambda: _send(client, alpha, agent_id, "count") == 50, timeout=30)
    (activated,) = _events(client, alpha, "activate", agent_id)
    assert activated["data"]["queued_message_count"] == reply["queued_message_count"]


def test_disposed_or_moved_paglets_are_not_resurrected(
    tmp_path: Path, client: HttpClient, hosts: list
) -> None:
    alpha = _host(hosts, "alpha", tmp_path / "alpha")
    beta = _host(hosts, "beta", tmp_path / "beta")
    disposed, moved, kept = (_create(client, alpha) for _ in range(3))
    for agent_id in (disposed, moved, kept):
        _send(client, alpha, agent_id, "add", 1)
        _checkpoint(client, alpha, agent_id)
    assert len(_checkpoint_files(alpha.directory)) == 3
    client.request_json("POST", f"{alpha.url}/agents/{disposed}/dispose", {}, timeout=30)
    client.request_json("POST", f"{alpha.url}/agents/{moved}/dispatch", {"target": beta.url}, timeout=60)
    wait_until(lambda: len(_checkpoint_files(alpha.directory)) == 1, timeout=10)
    alpha.restart()
    assert _listed(client, alpha) == {kept}
    assert copies(client, moved, alpha, beta) == [("beta", "ready")]
    assert _send(client, beta, moved, "count") == 1


def test_periodic_policy(tmp_path: Path, client: HttpClient, hosts: list) -> None:
    """The host's default checkpoints ``Tally``; ``Never`` opts out; ``Periodic`` sets its own period."""
    alpha = _host(hosts, "alpha", tmp_path / "alpha", checkpoint_interval=0.3)
    beta = _host(hosts, "beta", tmp_path / "beta")  # no default: only the class's own period
    tally, never = _create(client, alpha, "Tally"), _create(client, alpha, "Never")
    periodic = _create(client, beta, "Periodic")
    plain = _create(client, beta, "Tally")
    _send(client, alpha, tally, "add", 7)
    _send(client, beta, periodic, "add", 9)

    def checkpointed(host: HostProcess, agent_id: str, count: int) -> bool:
        return any(e["data"]["state_bytes"] > 0 for e in _events(client, host, "checkpoint", agent_id)) and (
            len(_events(client, host, "checkpoint", agent_id)) >= count
        )

    wait_until(lambda: checkpointed(alpha, tally, 2) and checkpointed(beta, periodic, 2), timeout=30)
    assert _events(client, alpha, "checkpoint", never) == []
    assert _events(client, beta, "checkpoint", plain) == []
    alpha.restart()
    beta.restart()
    assert _send(client, alpha, tally, "count") == 7
    assert _send(client, beta, periodic, "count") == 9
    assert _listed(client, alpha) == {tally}
    assert _listed(client, beta) == {periodic}


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs '{probe}'"],
        capture_output=True,
        timeout=30,
    )
    return result.returncode == 0


def test_a_failed_checkpoint_is_reported_and_the_paglet_runs_on(
    tmp_path: Path, client: HttpClient, hosts: list
) -> None:
    """The checkpoint directory is a 256 KiB file system (its own mount namespace): a 1 MiB state does
    not fit."""
    if os.geteuid() != 0 or not _can_mount_tmpfs(tmp_path):
        pytest.skip("needs a private mount namespace (root and unshare -m)")
    directory = tmp_path / "alpha"
    (directory / "checkpoints").mkdir(parents=True)
    mount = f"mount -t tmpfs -o size=256k tmpfs '{directory / 'checkpoints'}' && exec"
    alpha = OptionsHost("alpha", directory, {"api_key": KEY}, prefix=["unshare", "-m", "sh", "-c", mount])
    hosts.append(alpha)
    agent_id = _create(client, alpha)
    _send(client, alpha, agent_id, "add", 2)
    _checkpoint(client, alpha, agent_id)  # a small state fits
    _send(client, alpha, agent_id, "grow", 1 << 20)
    with pytest.raises(PagletError):
        _checkpoint(client, alpha, agent_id)
    (failed,) = _events(client, alpha, "checkpoint-failed", agent_id)
    assert "space" in failed["error"].lower()
    assert _send(client, alpha, agent_id, "add", 1) == 3  # it runs on
    assert alpha.proc is not None  # the earlier checkpoint is intact (seen in the host's mount namespace)
    inside = Path(f"/proc/{alpha.proc.pid}/root{directory / 'checkpoints'}")
    assert len(_checkpoint_files(inside.parent)) == 1
