"""The built-in services and the command line, end to end: three ``paglets-host`` processes on loopback
with the bundled launch config (mesh-info tuned to 1-second rounds), every command run as a subprocess.

The hosts share one fixture for the module (starting hosts is the slow part); each test leaves the mesh
as it found it. ``HOME`` is a temporary directory, so ``~/.paglets`` is the hosts' own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import HERE, wait_until

from paglets.config.startup import bundled_launch_config_text
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.services.builtin.mesh_info import GET_LANDSCAPE, LandscapeRequest
from paglets.services.builtin.user_info import (
    NOTIFY_USER,
    STREAM_USER,
    UserInfoRequest,
    UserInfoStreamRequest,
)

#: mesh-info's sample and gossip interval in these tests (the bundled default is 5 s).
GOSSIP = 1.0
FAST = ["--mesh-gossip-interval", "0.2", "--mesh-offline-after", "1.5"]
VERSION = "services-test"
SCRIPTS = {
    "paglets": "paglets.cli.main",
    "paglets-sysinfo": "paglets.cli.sysinfo",
    "paglets-mesh-info": "paglets.cli.meshinfo",
    "paglets-artifacts": "paglets.cli.artifacts",
}


def fast_launch_config() -> str:
    text = bundled_launch_config_text()
    for key in ("sample_interval", "gossip_interval"):
        text, count = re.subn(rf"{key} = [0-9.]+", f"{key} = {GOSSIP}", text)
        assert count >= 1, key  # mesh-info's (and compute-slots' gossip_interval)
    return text


def base_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(home), PAGLETS_MESH_VERSION=VERSION, NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    for name in ("PAGLETS_ENTRY", "PAGLETS_API_KEY"):
        env.pop(name, None)
    return env


class CliHost:
    """One ``paglets-host`` process; its stdout and stderr lines are collected as they come."""

    def __init__(self, home: Path, name: str, *extra: str) -> None:
        self.name = name
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paglets.cli.host",
                "--name",
                name,
                "--port",
                "0",
                "--persistence-dir",
                str(home / "hosts" / name),
                *FAST,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(home),
        )
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()
        found: list[str] = []

        def started() -> bool:
            found[:] = [
                m for line in list(self.stdout) for m in re.findall(r"https?://127\.0\.0\.1:\d+", line)
            ]
            if self.proc.poll() is not None:
                raise AssertionError(f"host {name} exited: {self.stderr}")
            return bool(found)

        wait_until(started, timeout=60)
        self.url = found[0]

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)  # noqa: PERF402 - one line at a time, as it arrives

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(30)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@dataclass
class Mesh:
    home: Path
    hosts: dict[str, CliHost]
    online_at: float
    client: HostClient = field(default_factory=lambda: HostClient(timeout=10.0))

    @property
    def alpha(self) -> CliHost:
        return self.hosts["alpha"]

    def cli(
        self, *argv: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a console script (from this interpreter's bin directory) against the mesh."""
        script = Path(sys.executable).parent / argv[0]
        command = [str(script)] if script.exists() else [sys.executable, "-m", SCRIPTS[argv[0]]]
        full_env = dict(base_env(self.home), PAGLETS_ENTRY=self.alpha.url, **(env or {}))
        return subprocess.run(
            [*command, *argv[1:]],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def json(self, *argv: str) -> Any:
        done = self.cli(*argv, "--json")
        assert done.returncode in (0, 1), done.stderr
        return json.loads(done.stdout)

    def online(self, url: str) -> set[str]:
        return {h["name"] for h in self.client.get_json(f"{url}/hosts")["hosts"] if h["online"]}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    home = tmp_path_factory.mktemp("home")
    config = home / ".paglets" / "launch.toml"
    config.parent.mkdir(parents=True)
    config.write_text(fast_launch_config())
    hosts: dict[str, CliHost] = {}
    mesh = Mesh(home, hosts, 0.0)
    try:
        hosts["alpha"] = CliHost(home, "alpha")
        for name in ("beta", "gamma"):
            hosts[name] = CliHost(home, name, "--peer", hosts["alpha"].url)
        names = set(hosts)
        wait_until(lambda: all(mesh.online(h.url) == names for h in hosts.values()), timeout=30)
        mesh.online_at = time.monotonic()
        yield mesh
    finally:
        mesh.client.close()
        for host in hosts.values():
            host.stop(signal.SIGKILL)


def rows(output: str, host: str) -> list[list[str]]:
    """The table rows of ``output`` that start with ``host`` (cells split on runs of spaces)."""
    found = []
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == host:
            found.append(cells)
    return found


# --- launch config and startup --------------------------------------------------------------------------


def test_hosts_synced_the_launch_config_and_run_the_eager_service(mesh: Mesh) -> None:
    for host in mesh.hosts.values():
        started = "resident services: compute-slots, mesh-info, server-info, user-info"
        assert any(started in line for line in host.stderr), host.stderr
        agents = mesh.client.get_json(f"{host.url}/agents?state=all")["agents"]
        eager = sorted(a["agent_id"] for a in agents)
        assert eager == ["service.compute-slots", "service.mesh-info"]  # the lazy ones wait for a call
        services = {s["name"] for s in mesh.client.get_json(f"{host.url}/services")["services"]}
        assert services == {"server-info", "mesh-info", "compute-slots", "user-info"}


# --- sys ------------------------------------------------------------------------------------------------


def test_sysinfo_df_table_and_json(mesh: Mesh) -> None:
    done = mesh.cli("paglets-sysinfo", "df")
    assert done.returncode == 0, done.stderr
    assert "Disk" in done.stdout
    for name in mesh.hosts:
        (row,) = (r for r in rows(done.stdout, name) if r[1] == "/")
        assert re.fullmatch(r"[\d.]+ (GB|TB|MB)", row[2]), row
        assert re.fullmatch(r"[\d.]+%", row[5]), row
    data = mesh.json("paglets", "sys", "df")
    assert data["operation"] == "df"
    assert set(data["results"]) == set(mesh.hosts)
    assert data["errors"] == {}
    for name, item in data["results"].items():
        assert item["host_url"] == mesh.hosts[name].url
        root = next(v for v in item["result"]["volumes"] if v["path"] == "/")
        assert root["total_bytes"] > root["free_bytes"] > 0


def test_sys_load_summary_and_ps(mesh: Mesh) -> None:
    load = mesh.cli("paglets-sysinfo", "load", "--no-gpu")
    assert load.returncode == 0, load.stderr
    for name in mesh.hosts:
        (row,) = rows(load.stdout, name)
        assert len(row) == 8, row  # no blank cell
        assert row[1].endswith("%")
        assert re.fullmatch(r"[\d.]+ [\d.]+ [\d.]+", row[2]), row
    data = mesh.json("paglets", "sys", "load")
    for item in data["results"].values():
        result = item["result"]
        assert result["memory_total_bytes"] > 0
        assert result["gpu_available"] or result["gpu_error"]  # a host without nvidia-smi says so
    summary = mesh.cli("paglets", "sys", "summary")
    assert summary.returncode == 0, summary.stderr
    assert all(rows(summary.stdout, name) for name in mesh.hosts)
    assert "Host Summary" in summary.stdout
    ps = mesh.cli("paglets", "sys", "ps", "paglet", "--limit", "2", "--host", "beta")
    assert ps.returncode == 0, ps.stderr
    assert len(rows(ps.stdout, "beta")) == 2
    assert "more matching processes not shown" in ps.stdout
    legacy = mesh.json("paglets-sysinfo", "plist", "paglet", "--limit", "1", "--args", "--host", "gamma")
    (process,) = legacy["results"]["gamma"]["result"]["processes"]
    assert process["cmdline"]
    assert legacy["results"]["gamma"]["result"]["truncated"] is True


def test_sys_bad_input_gives_one_line(mesh: Mesh) -> None:
    missing = mesh.cli("paglets", "sys", "df", "/no/such/dir", "/etc/hostname/below")
    assert missing.returncode == 1
    for name in mesh.hosts:
        assert f"- {name} /no/such/dir: No such file or directory" in missing.stdout
        assert f"- {name} /etc/hostname/below: Not a directory" in missing.stdout
    unknown = mesh.cli("paglets", "sys", "load", "--host", "nowhere")
    assert unknown.returncode == 2
    assert unknown.stderr == "paglets sys: unknown host 'nowhere' (known: alpha, beta, gamma)\n"
    entry = mesh.cli("paglets-sysinfo", "--entry", "nowhere", "df")
    assert entry.returncode == 2
    assert "no host named 'nowhere'" in entry.stderr
    assert len(entry.stderr.splitlines()) == 1
    usage = mesh.cli("paglets", "sys", "ps", "--limit", "many")
    assert usage.returncode == 2
    assert usage.stderr.startswith("paglets sys ps: error: argument --limit: invalid int value")
    assert len(usage.stderr.splitlines()) == 1
    dead = mesh.cli("paglets", "sys", "df", "--entry", "http://127.0.0.1:9")
    assert dead.returncode == 2
    assert dead.stderr == "paglets sys: cannot reach entry host http://127.0.0.1:9: connection refused\n"


def test_a_slow_service_is_reported_and_the_host_keeps_serving(mesh: Mesh) -> None:
    started = time.monotonic()
    slow = mesh.cli("paglets", "sys", "load", "--interval", "3", "--timeout", "0.5", "--host", "beta")
    assert time.monotonic() - started < 3.0  # bounded by the deadline (0.5 s), not by the service (3 s)
    assert slow.returncode == 1
    assert "- beta: not answering" in slow.stdout
    after = mesh.cli("paglets", "sys", "summary", "--host", "beta", "--timeout", "20")
    assert after.returncode == 0, after.stdout + after.stderr


def test_entry_discovery_names_what_it_tried(mesh: Mesh) -> None:
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs a private network namespace (unshare -n) so that nothing answers on 8765")
    env = dict(base_env(mesh.home), PAGLETS_ENTRY="127.0.0.1:9")
    script = Path(sys.executable).parent / "paglets"
    done = subprocess.run(
        ["unshare", "-n", str(script), "mesh", "summary"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("paglets mesh: no reachable entry host; tried http://127.0.0.1:9 ("), (
        done.stderr
    )
    assert "http://127.0.0.1:8765 (" in done.stderr
    assert "--multicast" in done.stderr


# --- mesh -----------------------------------------------------------------------------------------------


def _landscape(mesh: Mesh, url: str) -> dict[str, float]:
    """Host name -> snapshot age (on the answering host's clock) in ``url``'s landscape."""
    reply = PagletProxy(url, "service.mesh-info", mesh.client).send(
        GET_LANDSCAPE.to_message(LandscapeRequest()), timeout=10
    )
    landscape = GET_LANDSCAPE.decode_reply(reply)
    return {s.host_name: landscape.generated_at - s.observed_at for s in landscape.hosts}


def test_every_host_sees_every_fresh_snapshot_within_two_gossip_intervals(mesh: Mesh) -> None:
    names = set(mesh.hosts)
    deadline = mesh.online_at + 2 * GOSSIP + 1.0  # +1 s for this poll to see it
    while not all(set(_landscape(mesh, h.url)) == names for h in mesh.hosts.values()):
        assert time.monotonic() < deadline, {h.name: _landscape(mesh, h.url) for h in mesh.hosts.values()}
        time.sleep(0.05)  # polling interval of the check, not a wait for an outcome
    worst = 0.0
    end = time.monotonic() + 2 * GOSSIP
    while time.monotonic() < end:
        for host in mesh.hosts.values():
            ages = _landscape(mesh, host.url)
            assert set(ages) == names
            worst = max(worst, *ages.values())
        time.sleep(0.1)
    assert worst <= 2 * GOSSIP, worst


def test_mesh_info_summary_and_targets(mesh: Mesh) -> None:
    done = mesh.cli("paglets-mesh-info", "summary")
    assert done.returncode == 0, done.stderr
    assert "Mesh Summary (from alpha)" in done.stdout
    for name in mesh.hosts:
        (row,) = rows(done.stdout, name)
        assert len(row) == 10, row
        assert re.fullmatch(r"[\d.]+s", row[1]), row
    data = mesh.json("paglets", "mesh", "summary", "--entry", "gamma")
    assert {h["host_name"] for h in data["hosts"]} == set(mesh.hosts)
    assert all(h["memory_total_bytes"] > 0 and h["work_total_bytes"] > 0 for h in data["hosts"])
    targets = mesh.json("paglets", "mesh", "targets", "--max-load-per-cpu", "1000", "--exclude-self")
    assert {t["snapshot"]["host_name"] for t in targets["targets"]} == {"beta", "gamma"}
    assert targets["rejected"] == {"alpha": "self excluded"}
    scores = [t["score"] for t in targets["targets"]]
    assert scores == sorted(scores)
    none = mesh.cli("paglets-mesh-info", "targets", "--min-memory", "1P", "--max-load-per-cpu", "1000")
    assert none.returncode == 1
    assert "No host qualifies as a target." in none.stdout
    for name in mesh.hosts:
        assert re.search(rf"- {name}: available memory [\d.]+ GiB below 1048576.0 GiB", none.stdout)
    bad = mesh.cli("paglets", "mesh", "targets", "--mem", "lots")
    assert bad.returncode == 2
    assert "not a size: 'lots'" in bad.stderr


# --- hosts and agents -----------------------------------------------------------------------------------


def test_hosts(mesh: Mesh) -> None:
    done = mesh.cli("paglets", "hosts")
    assert done.returncode == 0, done.stderr
    for name, host in mesh.hosts.items():
        (row,) = rows(done.stdout, name)
        assert row[1] == host.url
        assert row[2] == "online"
    data = mesh.json("paglets", "hosts")
    assert {h["name"] for h in data["hosts"]} == set(mesh.hosts)


def test_agents_lifecycle_from_the_command_line(mesh: Mesh) -> None:
    gamma = mesh.hosts["gamma"]
    created = mesh.client.post_json(
        f"{gamma.url}/agents",
        {"agent_class_name": "_paglets:Counter", "state_class_name": "_paglets:CounterState"},
    )
    agent_id = created["proxy"]["agent_id"]
    listing = mesh.cli("paglets", "agents", "list", "--class", "counter")
    assert listing.returncode == 0, listing.stderr
    (row,) = rows(listing.stdout, "gamma")
    assert row[1:4] == [agent_id, "Counter", "ready"]
    info = mesh.json("paglets", "agents", "info", agent_id)
    assert info["host"] == "gamma"
    assert info["agent"]["class_name"] == "_paglets:Counter"
    sent = mesh.cli("paglets", "agents", "send", agent_id, "add", "--args", '{"n": 5}')
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "5"
    state = mesh.json("paglets", "agents", "state", agent_id)
    assert state["state"]["count"] == 5
    bad_args = mesh.cli("paglets", "agents", "send", agent_id, "add", "--args", "{nope")
    assert bad_args.returncode == 2
    assert bad_args.stderr.startswith("paglets agents: --args is not valid JSON")
    assert mesh.cli("paglets", "agents", "deactivate", agent_id).returncode == 0
    assert mesh.json("paglets", "agents", "info", agent_id)["agent"]["active"] is False
    assert mesh.cli("paglets", "agents", "activate", agent_id).returncode == 0
    moved = mesh.cli("paglets", "agents", "dispatch", agent_id, "beta")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith(f"dispatched {agent_id} from gamma to beta")
    assert mesh.json("paglets", "agents", "info", agent_id)["host"] == "beta"
    refused = mesh.cli("paglets", "agents", "dispose", agent_id)
    assert refused.returncode == 2
    assert "refusing to dispose without --force" in refused.stderr
    assert mesh.cli("paglets", "agents", "dispose", agent_id, "--force").returncode == 0
    gone = mesh.cli("paglets", "agents", "info", agent_id)
    assert gone.returncode == 1
    assert gone.stderr.startswith(
        f"paglets agents: no paglet {agent_id} on any host (checked alpha, beta, gamma"
    )


# --- artifacts ------------------------------------------------------------------------------------------


def test_artifacts_commands(mesh: Mesh, tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(50_000))
    ref = mesh.client.upload_artifact(mesh.hosts["beta"].url, source, name="report.bin")
    empty = mesh.cli("paglets-artifacts", "list")
    assert empty.returncode == 0
    assert empty.stdout.strip() == "No artifacts."
    listed = mesh.cli("paglets-artifacts", "list", "--host", "beta")
    assert listed.returncode == 0, listed.stderr
    (row,) = rows(listed.stdout, "beta")
    assert row[1:5] == [ref.artifact_id, "48.8 KB", "none", "report.bin"]
    everywhere = mesh.json("paglets", "artifacts", "list", "--all-hosts")
    assert [a["artifact_id"] for a in everywhere["artifacts"]] == [ref.artifact_id]
    info = mesh.json("paglets-artifacts", "--host", "beta", "metadata", ref.artifact_id[:8])
    assert info["artifact"]["sha256"] == ref.sha256
    out = tmp_path / "copy.bin"
    got = mesh.cli("paglets", "artifacts", "get", ref.artifact_id, str(out), "--host", "beta")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == str(out)
    assert out.read_bytes() == source.read_bytes()
    again = mesh.cli("paglets", "artifacts", "get", ref.artifact_id, str(out), "--host", "beta")
    assert again.returncode == 2
    assert again.stderr == f"paglets artifacts: {out} exists (use --force to replace it)\n"
    refused = mesh.cli("paglets-artifacts", "delete", ref.artifact_id, "--host", "beta")
    assert refused.returncode == 2
    removed = mesh.cli("paglets", "artifacts", "rm", "-f", ref.artifact_id, "--host", "beta")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == f"Deleted {ref.artifact_id}\n"
    missing = mesh.cli("paglets", "artifacts", "info", ref.artifact_id, "--host", "beta")
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"paglets artifacts: no artifact {ref.artifact_id}")
    malformed = mesh.cli("paglets", "artifacts", "info", "xyz")
    assert malformed.returncode == 2


# --- user-info ------------------------------------------------------------------------------------------


def test_user_info_prints_on_its_host_and_is_read_back(mesh: Mesh) -> None:
    alpha = mesh.alpha
    proxy = PagletProxy(alpha.url, "service.user-info", mesh.client)
    proxy.send(NOTIFY_USER.to_message(UserInfoRequest(title="pi", message="16 digits done", job_id="job-7")))
    proxy.send(STREAM_USER.to_message(UserInfoStreamRequest(text="3.141592653589793\n", job_id="job-7")))
    proxy.send(NOTIFY_USER.to_message(UserInfoRequest(message="unrelated", job_id="other")))
    wait_until(lambda: any("INFO: pi job=job-7: 16 digits done" in line for line in alpha.stderr))
    wait_until(lambda: "3.141592653589793\n" in alpha.stdout)
    done = mesh.cli("paglets", "user-info", "--job", "job-7")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("INFO: pi job=job-7: 16 digits done")
    assert lines[1] == "3.141592653589793"
    data = mesh.json("paglets", "user-info", "--since", "2")
    assert [e["text"] for e in data["entries"]] == ["unrelated"]


def test_a_paglet_uses_server_info_and_tells_the_user_on_another_host(mesh: Mesh) -> None:
    gamma = mesh.hosts["gamma"]
    created = mesh.client.post_json(f"{gamma.url}/agents", {"agent_class_name": "_service_users:DiskAsker"})
    proxy = PagletProxy.from_wire(created["proxy"], mesh.client)
    try:
        assert proxy.send(Message("go", {"home": mesh.alpha.url, "job": "asker-1"}), timeout=30) == ["/"]
    finally:
        proxy.dispose()
    done = mesh.cli("paglets", "user-info", "--job", "asker-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("INFO: asker job=asker-1: gamma has 1 volume(s)")
    assert any("asker job=asker-1: gamma has 1 volume(s)" in line for line in mesh.alpha.stderr)


# --- the command line itself ----------------------------------------------------------------------------


def test_completion_scripts(mesh: Mesh) -> None:
    bash = mesh.cli("paglets", "completion", "bash")
    assert bash.returncode == 0
    probe = (
        bash.stdout
        + '\nCOMP_WORDS=(paglets sys d); COMP_CWORD=2; _paglets_complete; echo "${COMPREPLY[@]}"'
        + '\nCOMP_WORDS=(paglets agents list --j); COMP_CWORD=3; _paglets_complete; echo "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.splitlines() == ["df", "--json"], done.stderr
    for shell in ("zsh", "fish"):
        script = mesh.cli("paglets", "completion", shell)
        assert script.returncode == 0
        assert "paglets" in script.stdout
        assert "sys" in script.stdout


def test_version_and_help(mesh: Mesh) -> None:
    version = mesh.cli("paglets", "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("paglets ")
    for argv in (("paglets", "--help"), ("paglets", "sys", "df", "--help"), ("paglets-artifacts", "--help")):
        done = mesh.cli(*argv)
        assert done.returncode == 0, argv
        assert "usage:" in done.stdout
    group = mesh.cli("paglets", "mesh")
    assert group.returncode == 2
    assert "summary" in group.stderr


# --- a host that dies mid-command (last: it adds a host to the mesh and kills it) ------------------------


def test_a_host_killed_mid_command_shows_as_not_answering(mesh: Mesh) -> None:
    delta = CliHost(mesh.home, "delta", "--peer", mesh.alpha.url)
    try:
        wait_until(lambda: "delta" in mesh.online(mesh.alpha.url), timeout=30)
        command = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "paglets"),
                "sys",
                "load",
                "--interval",
                "2",
                "--timeout",
                "20",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(base_env(mesh.home), PAGLETS_ENTRY=mesh.alpha.url),
        )

        def serving_the_command() -> bool:
            agents = mesh.client.get_json(f"{delta.url}/agents")["agents"]
            return any(a["agent_id"] == "service.server-info" for a in agents)

        wait_until(serving_the_command, timeout=20)
        delta.stop(signal.SIGKILL)
        out, err = command.communicate(timeout=60)
    finally:
        delta.stop(signal.SIGKILL)
    assert command.returncode == 1, err
    assert re.search(r"- delta: not answering \(connection (refused|closed)\)", out), out
    for name in mesh.hosts:
        assert len(rows(out, name)) == 1, out
    # once the mesh has noticed, delta is a note, and the answer of the others is complete
    wait_until(lambda: "delta" not in mesh.online(mesh.alpha.url), timeout=30)
    after = mesh.cli("paglets", "sys", "summary")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "- offline, not asked: delta" in after.stdout
