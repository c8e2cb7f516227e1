"""``paglets-host`` processes for end-to-end command tests, and a way to run commands against them.

Hosts run with the bundled launch config (mesh-info sampling every second), a fast heartbeat, their own
persistence directory and ``HOME``; their stdout and stderr are collected as they come. Commands run as
subprocesses of the console scripts (or ``python -m`` when the script is not installed) with
``PAGLETS_ENTRY`` set to the first host.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import HERE, wait_until

from paglets.config.startup import bundled_launch_config_text
from paglets.remote.client import HostClient

FAST = ["--mesh-gossip-interval", "0.2", "--mesh-offline-after", "1.5"]
VERSION = "examples-test"
MODULES = {
    "paglets": "paglets.cli.main",
    "paglets-file-grabber": "paglets.cli.filegrabber",
    "paglets-pi-compute": "paglets.cli.pi",
    "paglets-perf-test": "paglets.cli.perf",
    "paglets-mesh-benchmark": "paglets.cli.meshbench",
    "paglets-search": "paglets.cli.search",
}


def launch_config() -> str:
    text = bundled_launch_config_text()
    for key in ("sample_interval", "gossip_interval"):
        text = re.sub(rf"{key} = [0-9.]+", f"{key} = 1.0", text)
    return text


def base_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, HOME=str(home), PAGLETS_MESH_VERSION=VERSION, NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    for name in ("PAGLETS_ENTRY", "PAGLETS_API_KEY"):
        env.pop(name, None)
    return env


class CliHost:
    """One ``paglets-host`` process, started in ``cwd``."""

    def __init__(self, home: Path, name: str, *extra: str, cwd: Path | None = None) -> None:
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
            cwd=cwd,
        )
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.start()
        found: list[str] = []

        def started() -> bool:
            found[:] = [m for line in list(self.stdout) for m in re.findall(r"http://127\.0\.0\.1:\d+", line)]
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
    cwd: Path
    hosts: dict[str, CliHost]
    client: HostClient = field(default_factory=lambda: HostClient(timeout=10.0))

    @property
    def alpha(self) -> CliHost:
        return self.hosts["alpha"]

    def start(self, name: str) -> CliHost:
        host = CliHost(self.home, name, "--peer", self.alpha.url, cwd=self.cwd)
        self.hosts[name] = host
        return host

    def online(self, url: str) -> set[str]:
        return {h["name"] for h in self.client.get_json(f"{url}/hosts")["hosts"] if h["online"]}

    def wait_joined(self, timeout: float = 30.0) -> None:
        names = {n for n, h in self.hosts.items() if h.proc.poll() is None}
        wait_until(
            lambda: all(self.online(h.url) == names for h in self.hosts.values() if h.proc.poll() is None),
            timeout,
        )

    def command(self, *argv: str, cwd: Path | None = None, timeout: float = 120) -> list[str]:
        script = Path(sys.executable).parent / argv[0]
        head = [str(script)] if script.exists() else [sys.executable, "-m", MODULES[argv[0]]]
        return [*head, *argv[1:]]

    def env(self) -> dict[str, str]:
        return dict(base_env(self.home), PAGLETS_ENTRY=self.alpha.url)

    def cli(
        self, *argv: str, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*argv),
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=cwd or self.cwd,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def many(
        self, *commands: Sequence[str], cwd: Path | None = None
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands three at a time; their results in order."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(3) as pool:
            return list(pool.map(lambda argv: self.cli(*argv, cwd=cwd), commands))

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
        )

    def agents(self, host: str) -> list[dict[str, Any]]:
        agents: list[dict[str, Any]] = self.client.get_json(f"{self.hosts[host].url}/agents")["agents"]
        return agents


def start_mesh(home: Path, cwd: Path, names: Sequence[str]) -> Mesh:
    config = home / ".paglets" / "launch.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(launch_config())
    mesh = Mesh(home, cwd, {})
    first, *rest = names
    mesh.hosts[first] = CliHost(home, first, cwd=cwd)
    for name in rest:
        mesh.start(name)
    mesh.wait_joined()
    return mesh


def stop_mesh(mesh: Mesh) -> None:
    mesh.client.close()
    for host in mesh.hosts.values():
        host.stop(signal.SIGKILL)
