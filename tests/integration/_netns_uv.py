"""Run inside ``unshare -n`` (loopback only) in a checkout where ``uv sync`` already ran: the quick start
of the project description, verbatim, with two ``uv run paglets-host`` processes on the fixed ports 8765
and 8766. Waits for beta to list alpha online in ``/hosts``, runs the further command lines given (each
must succeed; its output is checked by the caller's expectations: it names both hosts), stops both hosts
with SIGTERM and prints ``OK``.

``python _netns_uv.py CHECKOUT 'uv run ...' 'uv run ...' ['uv run paglets-sysinfo df' ...]``
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

DEADLINE = 90.0


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:  # loopback inside the namespace only
        return json.loads(answer.read())


def wait(what: str, predicate: Any, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise SystemExit(f"{proc.args} exited with {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def main() -> None:
    checkout, alpha_line, beta_line = sys.argv[1:4]
    commands = sys.argv[4:]
    procs: list[subprocess.Popen[str]] = []

    def start(line: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            shlex.split(line),
            cwd=checkout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # ``uv run`` starts the host as its child: kill the whole group
        )
        procs.append(proc)
        return proc

    try:
        alpha = start(alpha_line)
        wait("alpha to serve", lambda: get_json("http://127.0.0.1:8765/health")["name"] == "alpha", procs)
        beta = start(beta_line)

        def beta_lists_alpha() -> bool:
            hosts = get_json("http://127.0.0.1:8766/hosts")["hosts"]
            return any(h["name"] == "alpha" and h["online"] for h in hosts)

        wait("beta to list alpha online in /hosts", beta_lists_alpha, procs)
        (Path(checkout) / "data.bin").write_bytes(os.urandom(200_000))  # the file-grabber example's file
        for line in commands:
            done = subprocess.run(
                shlex.split(line), cwd=checkout, capture_output=True, text=True, timeout=120, check=False
            )
            assert done.returncode == 0, (line, done.returncode, done.stdout, done.stderr)
            if "pi-compute" in line:
                assert done.stdout.startswith("3.14159"), (line, done.stdout)
            else:
                quiet = line.endswith(("artifacts list", "compute-groups"))  # nothing stored yet
                assert "alpha" in done.stdout or quiet, (line, done.stdout)
        for proc, name in ((beta, "beta"), (alpha, "alpha")):
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, (name, proc.returncode, out, err)
            assert f"paglets host {name} serving on http://127.0.0.1:876" in out, (name, out, err)
            assert f"host {name} stopped" in err, (name, out, err)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group, even if it exited
            proc.wait(30)
    print("OK")


if __name__ == "__main__":
    main()
