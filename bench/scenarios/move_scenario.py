"""One run of the movement scenario, written against the paglets 2.0 API (runs on both runtimes).

Host alpha runs in this process, host beta in a child process (same interpreter). Measures host-initiated
dispatch alpha -> beta for tiny, 1 MiB, 16 MiB and 64 MiB states (random and compressible), tiny again
at a pace (one every ``PACE`` seconds), a clone
fan-out of 8 to beta, and a same-host dispatch. Prints one JSON object (milliseconds, medians).
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

BETA = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    from paglets.runtime.host import Host
    host = Host("beta", persistence_dir={tmp!r}, mesh_lan_discovery=False, mesh_multicast=False)
    host.start_background()
    print(host.address, flush=True)
    sys.stdin.read()
    host.stop()
    """
)


def payload(size: int, compressible: bool) -> bytes:
    if compressible:
        line = b"paglets move state, compressible line of text 0123456789\n"
        return (line * (size // len(line) + 1))[:size]
    return os.urandom(size)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        beta = subprocess.Popen(
            [sys.executable, "-c", BETA.format(here=str(Path(__file__).resolve().parent), tmp=tmp + "/beta")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
        )
        alpha = Host("alpha", persistence_dir=tmp + "/alpha", mesh_lan_discovery=False, mesh_multicast=False)
        alpha.start_background()
        try:
            assert beta.stdout is not None
            beta_url = beta.stdout.readline().strip()
            for label, size, compressible, n in [
                ("tiny", 0, False, rounds * 2),
                ("1MiB_random", 1 << 20, False, rounds),
                ("16MiB_random", 16 << 20, False, rounds),
                ("16MiB_compressible", 16 << 20, True, rounds),
                ("64MiB_random", 64 << 20, False, max(3, rounds // 2)),
                ("64MiB_compressible", 64 << 20, True, max(3, rounds // 2)),
            ]:
                data = payload(size, compressible)
                samples = []
                for _ in range(n):
                    proxy = alpha.create(BenchPaglet, BenchState(payload=data))
                    t0 = time.perf_counter()
                    moved = alpha.dispatch(proxy.agent_id, beta_url)
                    samples.append(time.perf_counter() - t0)
                    moved.send(Message("count"))
                    moved.dispose()
                result[f"dispatch_{label}_ms"] = statistics.median(samples) * 1e3

            samples = []
            for _ in range(rounds * 2):
                time.sleep(PACE)
                proxy = alpha.create(BenchPaglet, BenchState())
                t0 = time.perf_counter()
                moved = alpha.dispatch(proxy.agent_id, beta_url)
                samples.append(time.perf_counter() - t0)
                moved.send(Message("count"))
                moved.dispose()
            result["dispatch_tiny_paced_ms"] = statistics.median(samples) * 1e3

            proxy = alpha.create(BenchPaglet, BenchState(payload=payload(1 << 20, False)))
            samples = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                clones = [alpha.clone(proxy.agent_id, target=beta_url) for _ in range(8)]
                samples.append(time.perf_counter() - t0)
                for clone in clones:
                    clone.dispose()
            result["clone_fanout_8_ms"] = statistics.median(samples) * 1e3

            samples = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                alpha.dispatch(proxy.agent_id, alpha.address)
                samples.append(time.perf_counter() - t0)
            result["dispatch_same_host_1MiB_ms"] = statistics.median(samples) * 1e3
        finally:
            alpha.stop()
            if beta.stdin is not None:
                beta.stdin.close()
            beta.wait(60)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
