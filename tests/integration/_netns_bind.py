"""Run inside a fresh network namespace (``unshare -n``): ``--bind-public`` with an explicit address and
with ``auto``, including a rebind when the LAN address changes. Prints ``OK`` on success."""

from __future__ import annotations

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


def main() -> None:
    sh("ip link set lo up && ip addr add 10.1.0.1/32 dev lo && ip route add default via 10.1.0.1 dev lo")
    client = HostClient(timeout=5)
    with tempfile.TemporaryDirectory() as tmp:
        explicit = Host("explicit", host=["10.1.0.1"], persistence_dir=tmp + "/e")
        explicit.start_background()
        assert explicit.address.startswith("http://10.1.0.1:"), explicit.address
        assert client.get_json(explicit.address + "/health")["name"] == "explicit"
        explicit.stop()

        auto = Host("auto", host="auto", bind_watch_interval=0.1, persistence_dir=tmp + "/a")
        auto.start_background()
        try:
            assert auto.address.startswith("http://10.1.0.1:"), auto.address
            port = auto.port
            sh(
                "ip route del default && ip addr del 10.1.0.1/32 dev lo && ip addr add 10.2.0.1/32 dev lo "
                "&& ip route add default via 10.2.0.1 dev lo"
            )
            wait(lambda: auto.address == f"http://10.2.0.1:{port}")
            events = [e for e in auto.list_events(limit=1000) if e.kind == "context-rebind"]
            assert events[-1].data["new_address"] == f"http://10.2.0.1:{port}", events
            assert client.get_json(auto.address + "/health")["address"] == auto.address
        finally:
            auto.stop()
    client.close()
    print("OK")


if __name__ == "__main__":
    sys.exit(main())
