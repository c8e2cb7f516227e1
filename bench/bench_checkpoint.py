"""Cost of a checkpoint of an active paglet (state snapshot between handlers, durable record, fsync).

Creates paglets with a state of 1 KiB, 1 MiB and 16 MiB (random bytes: incompressible) on an embedded
host and times ``Host.checkpoint`` (the whole call: waiting for a gap between handlers, the snapshot in
the paglet's process, the record written, fsynced and renamed), next to a plain message for scale.

    .venv/bin/python bench/bench_checkpoint.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))  # importable by name

from _bench_agents import BenchPaglet, BenchState

from paglets.core.messages import Message
from paglets.runtime.host import Host


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Host("bench", persistence_dir=f"{tmp}/h", mesh=False) as host:
        for label, size in (("1 KiB", 1024), ("1 MiB", 1 << 20), ("16 MiB", 16 << 20)):
            proxy = host.create(BenchPaglet, BenchState(payload=os.urandom(size)))
            proxy.send(Message("add"))
            host.checkpoint(proxy.agent_id)  # warm-up
            took, warm = [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                host.checkpoint(proxy.agent_id)
                took.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                proxy.send(Message("add"))
                warm.append(time.perf_counter() - t1)
            host.dispose(proxy.agent_id)
            rows.append((label, size, statistics.median(took), statistics.median(warm)))
    print(f"{'state':>7} | {'checkpoint':>12} | {'MiB/s':>8} | {'a message':>10}")
    print(f"{'-' * 7}-+-{'-' * 12}-+-{'-' * 8}-+-{'-' * 10}")
    for label, size, took_s, warm_s in rows:
        rate = size / took_s / (1 << 20)
        print(f"{label:>7} | {took_s * 1000:9.2f} ms | {rate:8.1f} | {warm_s * 1000:7.2f} ms")
    print(f"(median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
