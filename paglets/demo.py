"""``python -m paglets.demo``: a three-host mesh on this machine and a traveller paglet touring it.

Starts hosts alpha, beta and gamma (HTTP on 127.0.0.1, each with its own paglet processes), joins them
into a mesh, creates a traveller on alpha and sends it around an itinerary of host *names*; each hop
is printed with its time. Then it measures messaging, crashes a paglet on purpose, and stops cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from paglets.core.errors import PagletCrashedError
from paglets.core.messages import Message
from paglets.demos.agents import Tally, Traveller, TravellerState
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


def _start_mesh(root: str, names: list[str]) -> list[Host]:
    hosts: list[Host] = []
    for name in names:
        peers = [hosts[0].address] if hosts else []
        host = Host(
            name,
            persistence_dir=os.path.join(root, name),
            peers=peers,
            mesh_version="demo",
            mesh_gossip_interval=0.5,
            preload_modules=["paglets.demos.agents"],
        )
        host.start_background()
        hosts.append(host)
    return hosts


def _show_host_warnings() -> None:
    """Print the hosts' own warnings (none in a healthy run), marked as theirs."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    logger = logging.getLogger("paglets")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def build_parser(prog: str = "python -m paglets.demo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Start hosts alpha, beta and gamma on this machine, send a traveller paglet around "
        "them, measure messaging, crash a paglet on purpose and stop cleanly.",
    )
    parser.add_argument("--messages", type=int, default=2000, help="messages per measurement (default 2000)")
    parser.add_argument(
        "--payload", type=int, default=1 << 20, help="bytes the traveller carries (default 1 MiB)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_host_warnings()

    with tempfile.TemporaryDirectory(prefix="paglets-demo-") as root:
        start = time.perf_counter()
        hosts = _start_mesh(root, ["alpha", "beta", "gamma"])
        alpha, beta, gamma = hosts
        try:
            for host in hosts:
                print(f"host {host.name:5} serving on {host.address}")
            for host in hosts:
                for other in hosts:
                    host.wait_for_host(other.name, timeout=30)
            print(f"mesh of {len(hosts)} hosts up and joined in {(time.perf_counter() - start) * 1e3:.0f} ms")

            t0 = time.perf_counter()
            traveller = alpha.create(Traveller, TravellerState(payload=os.urandom(args.payload)))
            created_ms = (time.perf_counter() - t0) * 1e3
            print(f"\ncreated traveller {traveller.agent_id} on alpha in {created_ms:.1f} ms")
            route = ["beta", "gamma", "alpha", "beta"]
            print(f"it carries {args.payload:,} bytes and tours {' -> '.join(['alpha', *route])}:")
            t0 = time.perf_counter()
            final = traveller.send(Message("start", arg=route))
            total_ms = (time.perf_counter() - t0) * 1e3
            where = next(h for h in hosts if h.address == final["host_url"])
            for hop in where.get_state(final["agent_id"], TravellerState).hops:
                print(f"  {hop}")
            print(f"tour done in {total_ms:.1f} ms; the traveller is now on {where.name}")

            tally = gamma.create(Tally)
            n = args.messages
            local_us = _median_us(lambda: tally.send(Message("add")), n)
            print(f"\nsync send to a paglet, in-process proxy: {local_us:.0f} us")
            client = HostClient()
            http = PagletProxy(gamma.address, tally.agent_id, client)
            http_us = _median_us(lambda: http.send(Message("add")), n)
            print(f"sync send to a paglet over HTTP:         {http_us:.0f} us")
            t0 = time.perf_counter()
            for _ in range(n):
                tally.send_oneway(Message("add"))
            tally.send(Message("add", {"n": 0}))
            print(
                f"oneway messages:                         {n / (time.perf_counter() - t0):,.0f} per second"
            )
            client.close()

            victim = beta.create(Tally)
            try:
                victim.send(Message("crash"))
            except PagletCrashedError as exc:
                print(f"\na paglet crashed on purpose: {exc}")
            print(f"the others are fine: tally = {tally.send(Message('add', {'n': 0}))}")
        finally:
            for host in reversed(hosts):
                host.stop()
        print("all hosts stopped; every paglet process is gone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
