"""Cost of an idle passivation and of the transparent reactivation by the next message.

Creates paglets with a state of 1 KiB, 1 MiB and 16 MiB on an embedded host, passivates each as the idle
timer does (hooks, snapshot, durable record, process end) and times it, then times the first message
(activation from the record, then the handler) against a warm message.

    .venv/bin/python bench/bench_passivation.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "scenarios"))  # importable by name

from _bench_agents import BenchPaglet, BenchState

from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationRequest
from paglets.runtime.host import Host


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    request = DeactivationRequest(reason="idle", source="idle-passivation")
    with tempfile.TemporaryDirectory() as tmp, Host("bench", persistence_dir=f"{tmp}/h", mesh=False) as host:
        for label, size in (("1 KiB", 1024), ("1 MiB", 1 << 20), ("16 MiB", 16 << 20)):
            passivate, wake, warm = [], [], []
            for _ in range(args.rounds):
                proxy = host.create(BenchPaglet, BenchState(payload=b"x" * size))
                proxy.send(Message("add"))
                t0 = time.perf_counter()  # what the idle timer runs
                host._run(host.parts.persistence.deactivate(proxy.agent_id, request, passivate=True))
                passivate.append(time.perf_counter() - t0)
                t1 = time.perf_counter()
                proxy.send(Message("add"))
                wake.append(time.perf_counter() - t1)
                t2 = time.perf_counter()
                proxy.send(Message("add"))
                warm.append(time.perf_counter() - t2)
                host.dispose(proxy.agent_id)
            print(
                f"{label:>7}: passivation {statistics.median(passivate) * 1000:7.1f} ms   "
                f"reactivating message {statistics.median(wake) * 1000:7.1f} ms   "
                f"warm message {statistics.median(warm) * 1000:6.2f} ms   (median of {args.rounds})"
            )


if __name__ == "__main__":
    main()
