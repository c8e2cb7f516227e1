"""A git lab for auto-update tests: a bare "remote" repository, working clones, hosts run from clones.

- The project in the repository is a small package of paglets (``labpaglets``, a ``Greeter`` whose reply
  says which version of the code runs) and a ``requirements.txt``; commits change both.
- Hosts run ``python -m paglets.cli.host --auto-update-from-git`` with the clone as working directory,
  from a venv of their own (made in a blink: ``--without-pip``, and a ``.pth`` that adds this test run's
  site-packages, pip and paglets included), so a dependency sync installs into that venv, never into the
  test environment. Dependencies come from a wheel built here into the repository (``pip --no-index``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import zipfile
from pathlib import Path
from typing import Any

from conftest import wait_until

from paglets.remote.client import HostClient

API_KEY = "lab-key-0123456789"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Lab",
    "GIT_AUTHOR_EMAIL": "lab@example.invalid",
    "GIT_COMMITTER_NAME": "Lab",
    "GIT_COMMITTER_EMAIL": "lab@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
FAST = ["--mesh-gossip-interval", "0.2", "--mesh-offline-after", "1.5"]

GREETER = '''"""The lab's paglet: its reply tells which code runs."""

from dataclasses import dataclass

from paglets.core.agent import Paglet, PagletState
{imports}

@dataclass
class GreeterState(PagletState):
    greetings: int = 0


class Greeter(Paglet[GreeterState]):
    State = GreeterState

    def handle_message(self, msg):
        if msg.kind == "hello":
            self.state.greetings += 1
            return f"{reply} #{{self.state.greetings}}"
        return None
'''


def greeter(reply: str, *, dep: bool = False) -> str:
    """The source of ``labpaglets/greeter.py`` answering ``reply`` (plus ``labdep.VALUE`` with ``dep``)."""
    if dep:
        return GREETER.format(imports="import labdep\n", reply=f"{reply} {{labdep.VALUE}}")
    return GREETER.format(imports="", reply=reply)


def requirements(*lines: str) -> str:
    return "--no-index\n--find-links wheels\n" + "".join(f"{line}\n" for line in lines)


def wheel(name: str, version: str, value: str) -> bytes:
    """A pure-Python wheel of package ``name`` whose ``VALUE`` is ``value``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: lab\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def record(path: str, data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        return f"{path},sha256={digest},{len(data)}"

    lines = [record(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for p, d in files.items():
            archive.writestr(p, d)
    return buf.getvalue()


def git(cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """The remote, clones of it, and the venv hosts run in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.remote = root / "remote.git"
        self.home = root / "home"
        self.home.mkdir()
        git(root, "init", "--quiet", "--bare", "-b", "main", str(self.remote))
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        self.python = venv / "bin" / "python"
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        outer = sysconfig.get_paths()["purelib"]
        Path(purelib, "lab_outer.pth").write_text(f"import site; site.addsitedir({outer!r})\n")
        self.purelib = Path(purelib)
        seed = self.clone("seed")
        self.v1 = self.commit(
            seed,
            {
                "labpaglets/__init__.py": "",
                "labpaglets/greeter.py": greeter("v1"),
                "requirements.txt": requirements(),
                "wheels/labdep-1.0-py3-none-any.whl": wheel("labdep", "1.0", "dep-1.0"),
                ".gitignore": "__pycache__/\n",
            },
            "v1",
            push=True,
        )

    def clone(self, name: str) -> Path:
        path = self.root / name
        git(self.root, "clone", "--quiet", str(self.remote), str(path))
        if not git(path, "branch", "--show-current", check=False):
            git(path, "checkout", "--quiet", "-b", "main")
        return path

    def commit(self, clone: Path, files: dict[str, str | bytes], message: str, *, push: bool = False) -> str:
        for rel, content in files.items():
            path = clone / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        git(clone, "add", "-A")
        git(clone, "commit", "--quiet", "-m", message)
        if push:
            git(clone, "push", "--quiet", "-u", "origin", "main")
        return git(clone, "rev-parse", "HEAD")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGLETS_", "GIT_"))}
        env.update(GIT_ENV, HOME=str(self.home), NO_COLOR="1", PAGLETS_API_KEY=API_KEY)
        env.update(extra)
        return env

    def run_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paglets.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def installed(self, package: str) -> bool:
        return (self.purelib / package).exists()


class LabHost:
    """``paglets-host --auto-update-from-git`` run from ``clone`` on a fixed port (a restart keeps it)."""

    def __init__(self, lab: Lab, name: str, clone: Path, *extra: str, key: str | None = API_KEY) -> None:
        self.lab = lab
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        env = lab.env()
        if key is None:
            env.pop("PAGLETS_API_KEY")
        self.proc = subprocess.Popen(
            [
                str(lab.python),
                "-m",
                "paglets.cli.host",
                "--name",
                name,
                "--port",
                str(self.port),
                "--persistence-dir",
                str(lab.root / "hosts" / name),
                "--no-launch-config",
                "--auto-update-from-git",
                *FAST,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=clone,
        )
        self.client = HostClient(timeout=30.0, api_key=key or "")
        readers = [
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in readers:
            reader.start()
        self._readers = readers
        self.wait_serving(1)

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)  # noqa: PERF402 - one line at a time, as it arrives

    def starts(self) -> int:
        """How many times this process (the same pid across re-execs) started serving."""
        return sum(1 for line in list(self.stdout) if re.search(r"serving on http://127\.0\.0\.1:\d+", line))

    def wait_serving(self, count: int, timeout: float = 60.0) -> None:
        def serving() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"host {self.name} exited: {''.join(self.stderr)}")
            return self.starts() >= count

        wait_until(serving, timeout=timeout)
        wait_until(self._answers, timeout=timeout)

    def _answers(self) -> bool:
        try:
            self.health()
        except Exception:
            return False
        return True

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = self.client.get_json(f"{self.url}/health", timeout=5.0)
        return health

    def hello(self, agent_id: str) -> Any:
        return self.client.post_json(
            f"{self.url}/agents/{agent_id}/messages", {"message": {"kind": "hello"}}, timeout=30.0
        )["result"]

    def create_greeter(self) -> str:
        reply = self.client.post_json(
            f"{self.url}/agents",
            {
                "agent_class_name": "labpaglets.greeter:Greeter",
                "state_class_name": "labpaglets.greeter:GreeterState",
            },
        )
        return str(reply["proxy"]["agent_id"])

    def console(self) -> str:
        return "".join(self.stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.client.close()
