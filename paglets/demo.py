"""``python -m paglets.demo``: start a host, run a few paglets, and show what happens and how fast.

Everything runs on this machine: one host with its HTTP API on 127.0.0.1, paglet processes forked
from the host's template process, and a client that talks to the host over HTTP like a remote user.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from paglets.core.errors import PagletCrashedError
from paglets.core.messages import Message
from paglets.demos.agents import Tally, TallyState
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host


def _median_us(fn: Callable[[], object], count: int) -> float:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paglets.demo", description=__doc__)
    parser.add_argument("--paglets", type=int, default=20, help="how many paglets to create (default 20)")
    parser.add_argument("--messages", type=int, default=2000, help="messages per measurement (default 2000)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="paglets-demo-") as tmp:
        start = time.perf_counter()
        host = Host(
            "demo",
            persistence_dir=tmp,
            mesh_lan_discovery=False,
            mesh_multicast=False,
            preload_modules=["paglets.demos.agents"],
        )
        host.start_background()
        print(
            f"host 'demo' serving on {host.address} (started in {(time.perf_counter() - start) * 1e3:.0f} ms)"
        )
        try:
            start = time.perf_counter()
            first = host.create(Tally, TallyState(), init="hello")
            print(f"created {first.agent_id} in {(time.perf_counter() - start) * 1e3:.1f} ms")
            print("  whoami:", first.send(Message("whoami")))

            creates = []
            proxies = [first]
            for _ in range(args.paglets - 1):
                t0 = time.perf_counter()
                proxies.append(host.create(Tally))
                creates.append(time.perf_counter() - t0)
            if creates:
                median_ms = statistics.median(creates) * 1e3
                print(f"created {len(creates)} more paglets, median {median_ms:.1f} ms each")

            n = args.messages
            print(f"sync send, in-process proxy: {_median_us(lambda: first.send(Message('add')), n):.0f} us")
            http = PagletProxy(host.address, first.agent_id, HostClient())
            print(f"sync send over HTTP:         {_median_us(lambda: http.send(Message('add')), n):.0f} us")
            t0 = time.perf_counter()
            for _ in range(n):
                first.send_oneway(Message("add"))
            total = first.send(Message("add", {"n": 0}))
            print(f"oneway: {n / (time.perf_counter() - t0):,.0f} messages/s (total now {total})")

            replies = host.multicast_message("add", {"n": 10})
            replies.wait_for_all_replies(30)
            print(f"multicast to {len(proxies)} paglets: {sorted(r.get_reply() for r in replies)[:5]} ...")

            victim = proxies[-1]
            try:
                victim.send(Message("crash"))
            except PagletCrashedError as exc:
                print(f"a paglet crashed on purpose: {exc}")
            print("  the others are fine:", first.send(Message("add", {"n": 0})))
            print("history of the first paglet:")
            for line in host.get_state(first.agent_id, TallyState).history:
                print("  -", line)
            if http.client is not None:
                http.client.close()
        finally:
            host.stop()
        print("host stopped; every paglet process is gone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
