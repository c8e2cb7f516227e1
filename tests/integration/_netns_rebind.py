"""Run inside a fresh network namespace (``unshare -n``): an ``auto`` host whose LAN address changes to
one it cannot bind keeps serving on the old address, and moves once the new one is free. Prints ``OK``."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import tempfile
import time

from paglets.remote.client import HostClient
from paglets.runtime.host import Host


def sh(command: str) -> None:
    subprocess.run(["sh", "-c", command], check=True, timeout=30)


def wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        time.sleep(0.02)


class _Failures(logging.Handler):
    """Counts the bind watcher's "cannot rebind" log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "cannot rebind" in record.getMessage():
            self.count += 1


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, int(port))) != 0


def main() -> None:
    sh("ip link set lo up && ip addr add 10.1.0.1/32 dev lo && ip route add default via 10.1.0.1 dev lo")
    failures = _Failures()
    logging.getLogger("paglets.runtime").addHandler(failures)
    client = HostClient(timeout=5)
    with tempfile.TemporaryDirectory() as tmp:
        host = Host("auto", host="auto", bind_watch_interval=0.1, persistence_dir=tmp)
        host.start_background()
        try:
            old = host.address
            assert old.startswith("http://10.1.0.1:"), old
            port = host.port
            # the new LAN address is there, but its port is taken: the rebind must fail and change nothing
            sh("ip addr add 10.2.0.1/32 dev lo")
            blocker = socket.socket()
            blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            blocker.bind(("10.2.0.1", port))
            blocker.listen()
            sh("ip route replace default via 10.2.0.1 dev lo src 10.2.0.1")
            wait(lambda: failures.count >= 3)  # the watcher tried (and failed) three times
            assert host.address == old, host.address
            assert client.get_json(old + "/health")["address"] == old  # the old server still serves
            assert not [e for e in host.list_events(limit=1000) if e.kind == "context-rebind"]
            # the address is free again: the next check moves the host, and only then closes the old one
            blocker.close()
            new = f"http://10.2.0.1:{port}"
            wait(lambda: host.address == new)
            assert client.get_json(new + "/health")["address"] == new
            events = [e for e in host.list_events(limit=1000) if e.kind == "context-rebind"]
            assert [(e.data["old_address"], e.data["new_address"]) for e in events] == [(old, new)], events
            wait(lambda: refused(old))  # the old listener is closed once the new one serves
        finally:
            host.stop()
    client.close()
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
