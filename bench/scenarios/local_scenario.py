"""One run of the local-runtime scenario. Uses only the paglets 2.0 API, so it runs on both runtimes.

Prints one JSON object: create -> first reply (a burst of 8, and paced: one every ``PACE`` seconds),
sync send (in-process proxy and over HTTP from another process), oneway rate, get_state, and PSS per
idle paglet for 10 and 100 paglets.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_agents import BenchPaglet, BenchState

from paglets.core.messages import Message
from paglets.runtime.host import Host

#: Seconds between the paced creations: time for a host to replace what a creation used (the portable
#: backend's spare interpreter; the Linux backend and 2.0 need no such time), so the paced row shows one
#: creation at a time, the other a burst.
PACE = 0.3


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except OSError:
                pass
    out, frontier = [], {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier}
        out.extend(frontier)
    return out


def is_template(pid: int) -> bool:
    """Our host's template process and its spare child (not paglets; the spare waits for work)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().startswith(b"paglets-zygote")
    except OSError:
        return True


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        host = Host("bench", persistence_dir=tmp, mesh_lan_discovery=False, mesh_multicast=False)
        host.start_background()
        try:
            creates = []
            for _ in range(8):
                t0 = time.perf_counter()
                proxy = host.create(BenchPaglet, BenchState())
                proxy.send(Message("count"))
                creates.append(time.perf_counter() - t0)
            result["create_first_reply_ms"] = statistics.median(creates[1:]) * 1e3
            for p in list(host.get_proxies()):
                host.dispose(p.agent_id)
            paced = []
            for _ in range(6):
                time.sleep(PACE)
                t0 = time.perf_counter()
                proxy = host.create(BenchPaglet, BenchState())
                proxy.send(Message("count"))
                paced.append(time.perf_counter() - t0)
                proxy.dispose()
            result["create_paced_ms"] = statistics.median(paced) * 1e3

            proxy = host.create(BenchPaglet, BenchState())
            for _ in range(100):
                proxy.send(Message("add"))
            samples = []
            for _ in range(count):
                t0 = time.perf_counter()
                proxy.send(Message("add"))
                samples.append(time.perf_counter() - t0)
            result["send_embedded_us"] = median_us(samples)

            client_script = textwrap.dedent(
                f"""
                import statistics, time
                from paglets.core.messages import Message
                from paglets.remote.client import HostClient
                from paglets.remote.proxy import PagletProxy
                proxy = PagletProxy({host.address!r}, {proxy.agent_id!r}, HostClient())
                for _ in range(100):
                    proxy.send(Message("add"))
                samples = []
                for _ in range({count}):
                    t0 = time.perf_counter()
                    proxy.send(Message("add"))
                    samples.append(time.perf_counter() - t0)
                print(statistics.median(samples) * 1e6)
                """
            )
            done = subprocess.run(
                [sys.executable, "-c", client_script], capture_output=True, text=True, timeout=600, cwd=tmp
            )
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            result["send_http_us"] = float(done.stdout.strip().splitlines()[-1])

            before = proxy.send(Message("count"))
            t0 = time.perf_counter()
            for _ in range(count):
                proxy.send_oneway(Message("add"))
            deadline = time.monotonic() + 600
            arrived = before
            while arrived < before + count and time.monotonic() < deadline:
                arrived = proxy.send(Message("count"))
            if arrived < before + count:
                # a rate over messages that never arrived would flatter the runtime: report none
                raise RuntimeError(f"only {arrived - before} of {count} oneway messages arrived in 600 s")
            result["oneway_per_s"] = count / (time.perf_counter() - t0)

            samples = []
            for _ in range(min(count, 500)):
                t0 = time.perf_counter()
                host.get_state(proxy.agent_id, BenchState)
                samples.append(time.perf_counter() - t0)
            result["get_state_us"] = median_us(samples)
            host.dispose(proxy.agent_id)

            for n in (10, 100):
                for p in list(host.get_proxies()):
                    host.dispose(p.agent_id)
                before_pids = {pid for pid in descendants(os.getpid()) if not is_template(pid)}
                proxies = [host.create(BenchPaglet, BenchState()) for _ in range(n)]
                for p in proxies:
                    p.send(Message("count"))
                pids = [
                    pid for pid in descendants(os.getpid()) if pid not in before_pids and not is_template(pid)
                ]
                total = sum(pss_kib(pid) for pid in pids)
                result[f"pss_per_paglet_{n}_mib"] = total / max(1, len(pids)) / 1024
                result[f"processes_{n}"] = len(pids)
        finally:
            host.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
