"""One run of the relay scenario, written against the paglets 2.0 API (runs on both runtimes).

In this process: a hub (API key, public URL), two connect-mode hosts b and c, and a direct host d.
Measures a synchronous message round trip to a paglet on b through the hub versus to one on d directly,
and host-initiated dispatch b -> c through the hub versus d -> hub directly, for a tiny and a 16 MiB
state. Prints one JSON object (milliseconds, medians).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_agents import BenchPaglet, BenchState

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

KEY = "relay-bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def retry(call: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    os.environ["PAGLETS_API_KEY"] = KEY
    result: dict[str, float] = {}
    common: dict[str, Any] = {"api_key": KEY, "mesh_lan_discovery": False, "mesh_multicast": False}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        hub_url = f"http://127.0.0.1:{port}"
        hub = Host("hub", port=port, public_url=hub_url, persistence_dir=tmp + "/hub", **common)
        hub.start_background()
        b = Host("b", connect_to=hub_url, persistence_dir=tmp + "/b", **common)
        c = Host("c", connect_to=hub_url, persistence_dir=tmp + "/c", **common)
        d = Host("d", persistence_dir=tmp + "/d", **common)
        hosts = [b, c, d]
        for host in hosts:
            host.start_background()
        client = HostClient(timeout=60, api_key=KEY)
        try:
            for label, target in (("relay", b), ("direct", d)):
                proxy = target.create(BenchPaglet, BenchState())
                remote = PagletProxy(proxy.get_address(), proxy.get_agent_id(), client)
                retry(lambda remote=remote: remote.send(Message("add")))
                samples = []
                for _ in range(rounds * 40):
                    t0 = time.perf_counter()
                    remote.send(Message("add"))
                    samples.append(time.perf_counter() - t0)
                result[f"message_rtt_{label}_ms"] = statistics.median(samples) * 1e3
            for size_label, size in (("tiny", 0), ("16MiB", 16 << 20)):
                data = os.urandom(size)
                for label, source, target in (("relay", b, c.address), ("direct", d, hub_url)):
                    samples = []
                    for _ in range(rounds):
                        proxy = source.create(BenchPaglet, BenchState(payload=data))
                        t0 = time.perf_counter()
                        moved = retry(lambda p=proxy, s=source, t=target: s.dispatch(p.get_agent_id(), t))
                        samples.append(time.perf_counter() - t0)
                        PagletProxy(moved.get_address(), moved.get_agent_id(), client).dispose()
                    result[f"dispatch_{size_label}_{label}_ms"] = statistics.median(samples) * 1e3
        finally:
            getattr(client, "close", lambda: None)()
            for host in [*hosts, hub]:
                host.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
