"""Run inside ``unshare -n`` (loopback only): README's "Hosts by hand", verbatim. In WORKDIR (which holds
``counter.py`` and a ``.venv`` link to the test's environment) starts the two ``.venv/bin/paglets-host``
lines on the fixed ports 8765/8766, waits until beta lists alpha online, runs the README's client
snippet with the same interpreter, prints its output, then stops both hosts with SIGTERM.

``python _netns_readme.py WORKDIR 'alpha line' 'beta line' CLIENT.py``
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys

from _netns_uv import get_json, wait


def main() -> None:
    workdir, alpha_line, beta_line, client = sys.argv[1:5]
    procs: list[subprocess.Popen[str]] = []

    def start(line: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            shlex.split(line),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the host and its paglet processes go with the group
        )
        procs.append(proc)
        return proc

    try:
        start(alpha_line)
        wait("alpha to serve", lambda: get_json("http://127.0.0.1:8765/health")["name"] == "alpha", procs)
        start(beta_line)

        def both_online() -> bool:
            hosts = get_json("http://127.0.0.1:8765/hosts")["hosts"]
            return {h["name"] for h in hosts if h["online"]} >= {"alpha", "beta"}

        wait("alpha to list beta online", both_online, procs)
        done = subprocess.run(
            [sys.executable, client], cwd=workdir, capture_output=True, text=True, timeout=120
        )
        sys.stdout.write(done.stdout)
        if done.returncode != 0:
            raise SystemExit(f"the client snippet failed:\n{done.stderr}")
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
            assert proc.returncode == 0, (proc.args, proc.returncode)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group, even if it exited
            proc.wait(30)


if __name__ == "__main__":
    main()
