"""Run ``paglets host`` in this process, use its built-in services once, then list the imported modules.

``python _host_modules.py PORT OUT_FILE`` (with ``HOME`` pointing at a fresh directory): a helper
thread waits for the host, calls ``server-info`` and ``user-info`` over HTTP (so their paglet
processes start), writes ``sorted(sys.modules)`` to OUT_FILE and stops the host with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def _probe(port: int, out_file: str) -> None:
    try:
        _use_services(port, out_file)
    finally:  # whatever happened, the host stops (the test then finds OUT_FILE, or not)
        os.kill(os.getpid(), signal.SIGTERM)


def _use_services(port: int, out_file: str) -> None:
    from paglets.core.messages import Message  # imported by main() already (no import race)
    from paglets.remote.client import HostClient
    from paglets.remote.proxy import PagletProxy

    url = f"http://127.0.0.1:{port}"
    client = HostClient(timeout=10.0)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.get_json(f"{url}/health")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    PagletProxy(url, "service.server-info", client).send(Message("summary", {}), timeout=30)
    PagletProxy(url, "service.user-info", client).send(Message("notify", {"message": "hi"}), timeout=30)
    with open(out_file, "w") as fh:
        fh.write("\n".join(sorted(sys.modules)))


def main() -> int:
    port, out_file = int(sys.argv[1]), sys.argv[2]
    # what the helper thread uses is imported here first: two threads importing one package at once can
    # see each other's half-initialised modules
    import paglets.core.messages
    import paglets.remote.client
    import paglets.remote.proxy  # noqa: F401
    from paglets.cli.main import main as paglets_main

    threading.Thread(target=_probe, args=(port, out_file), daemon=True).start()
    return paglets_main(["host", "--name", "solo", "--port", str(port), "--mesh-version", "imports"])


if __name__ == "__main__":
    raise SystemExit(main())
