"""How fast is the durable inactive-record store, and does 100,000 records load in <= 2 s?

Question: what does keeping paglets inactive on disk cost — a durable write (temp file, fdatasync, rename,
directory fsync), a durable queued-message append, a read — and how long does a host take to index
100,000 inactive records at start, with how much memory?

Phases, each in its own fresh process on one store directory (under /tmp unless ``--dir``):

1. ``write``  — N1 records (small states), durable; per-write latency;
2. ``load``   — a fresh process opens the store and times ``load()`` (N1 records); RSS after load;
3. ``write``  — more records up to N2, durable;
4. ``load``   — the same for N2 records, plus the latency of ``read`` on a sample;
5. ``append`` — durable ``append_message`` calls spread over the records; latency and rate;
6. ``load``   — N2 records, now with queue logs.

N1, N2 = 10,000 and 100,000 (``--quick``: 2,000 and 20,000). The page cache is warm (the records were
just written), which is what a host restart sees on a running machine; a cold cache after a reboot is
slower. Before each load the driver calls ``sync`` so that the writeback of the records just written
does not compete with the measurement. Usage::

    .venv/bin/python bench/bench_records.py            # table (about a minute)
    .venv/bin/python bench/bench_records.py --quick    # a few seconds
    .venv/bin/python bench/bench_records.py --json     # one JSON document

There is no reference comparison: paglets 2.0 writes one pretty-printed JSON file per record without
fsync and rewrites it whole for each queued message.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from paglets.persistence._records import RecordStore, StoredRecord  # noqa: E402

#: Target of the issue: 100,000 inactive records load in at most this many seconds.
LOAD_TARGET_SECONDS = 2.0
#: Per-phase subprocess timeout.
PHASE_TIMEOUT = 600.0
#: Durable appends made in the append phase.
APPENDS = 10_000
#: Records read back in the load phase (read latency sample).
READ_SAMPLE = 1_000
CLASSES = [("shop.agents:Buyer", "shop.agents:BuyerState"), ("shop.agents:Seller", "shop.agents:SellerState")]


def agent_id(i: int) -> str:
    return f"{i:032x}"


def small_state(rng: random.Random) -> bytes:
    """A small MessagePack-like state of 100-1,000 bytes, partly repetitive like real ones."""
    size = rng.randrange(100, 1000)
    return (b"\x85\xa4name\xa5buyer\xa5items" + rng.randbytes(16)) * (size // 40 + 1)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


# --- phases (each runs in its own process) ----------------------------------------------------------------


def phase_write(directory: Path, start: int, stop: int) -> dict[str, Any]:
    rng = random.Random(start)
    latencies: list[float] = []
    with RecordStore(directory) as store:
        store.load()
        began = time.perf_counter()
        for i in range(start, stop):
            agent_class, state_class = CLASSES[i % len(CLASSES)]
            record = StoredRecord(
                agent_id=agent_id(i),
                agent_class=agent_class,
                state_class=state_class,
                state=small_state(rng),
                policy={"activate_on_startup": i % 10 == 0, "activate_at": None if i % 7 else 1e10 + i},
                request={"reason": "idle", "source": "host"},
            )
            t0 = time.perf_counter()
            store.write(record)
            latencies.append(time.perf_counter() - t0)
        total = time.perf_counter() - began
        stored = store.statistics().stored_bytes
    return {
        "records": stop - start,
        "seconds": total,
        "median_ms": statistics.median(latencies) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "per_second": (stop - start) / total,
        "bytes_per_record": stored / max(1, stop),
    }


def phase_load(directory: Path) -> dict[str, Any]:
    before = rss_bytes()
    with RecordStore(directory) as store:
        t0 = time.perf_counter()
        count = store.load()
        seconds = time.perf_counter() - t0
        after = rss_bytes()
        summaries = store.summaries()
        startup = sum(1 for s in summaries if s.activate_on_startup)
        queued = sum(s.queued_count for s in summaries)
        sample = random.Random(1).sample([s.agent_id for s in summaries], min(READ_SAMPLE, len(summaries)))
        latencies = []
        for name in sample:
            t1 = time.perf_counter()
            store.read(name)
            latencies.append(time.perf_counter() - t1)
    return {
        "records": count,
        "seconds": seconds,
        "rss_delta_mib": (after - before) / 2**20,
        "rss_mib": after / 2**20,
        "bytes_per_record": (after - before) / max(1, count),
        "activate_on_startup": startup,
        "queued_messages": queued,
        "read_median_us": statistics.median(latencies) * 1e6 if latencies else 0.0,
    }


def phase_append(directory: Path, count: int) -> dict[str, Any]:
    rng = random.Random(7)
    first: list[float] = []  # the first append of a record creates its log (temp file, rename)
    later: list[float] = []  # the others append one entry to it
    with RecordStore(directory) as store:
        store.load()
        ids = [s.agent_id for s in store.summaries()]
        targets = [rng.choice(ids[: max(1, len(ids) // 100)]) for _ in range(count)]  # 1 % of the records
        seen: set[str] = set()
        began = time.perf_counter()
        for n, target in enumerate(targets):
            message = {"kind": "offer", "args": {"n": n, "price": 12.5}, "message_id": f"{n:032x}"}
            t0 = time.perf_counter()
            store.append_message(target, message, oneway=True)
            (later if target in seen else first).append(time.perf_counter() - t0)
            seen.add(target)
        total = time.perf_counter() - began
    return {
        "appends": count,
        "seconds": total,
        "first_median_ms": statistics.median(first) * 1e3,
        "median_ms": statistics.median(later) * 1e3,
        "p99_ms": percentile(later, 0.99) * 1e3,
        "per_second": count / total,
    }


# --- driver ---------------------------------------------------------------------------------------------


def run_phase(*args: str) -> dict[str, Any]:
    if args[0] == "load":
        os.sync()  # let the writeback of the previous phase finish: a restart does not race it
    done = subprocess.run(
        [sys.executable, __file__, "--phase", *args],
        capture_output=True,
        text=True,
        timeout=PHASE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 records")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--dir", type=Path, help="parent directory for the store (default: a temp dir)")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        name, directory, *rest = args.phase
        result = {
            "write": lambda: phase_write(Path(directory), int(rest[0]), int(rest[1])),
            "load": lambda: phase_load(Path(directory)),
            "append": lambda: phase_append(Path(directory), int(rest[0])),
        }[name]()
        print(json.dumps(result))
        return

    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    parent = tempfile.mkdtemp(prefix="paglets-bench-records-", dir=args.dir)
    try:
        directory = str(Path(parent) / "host")
        results = {
            f"write_{small}": run_phase("write", directory, "0", str(small)),
            f"load_{small}": run_phase("load", directory),
            f"write_{large}": run_phase("write", directory, str(small), str(large)),
            f"load_{large}": run_phase("load", directory),
            "append": run_phase("append", directory, str(APPENDS if not args.quick else APPENDS // 5)),
            f"load_{large}_with_queues": run_phase("load", directory),
        }
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    load_large = results[f"load_{large}"]["seconds"]
    document = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "records": [small, large],
        "results": results,
        "targets": {f"load {large:,} records <= {LOAD_TARGET_SECONDS} s": load_large <= LOAD_TARGET_SECONDS},
    }
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print_table(results, small, large)
    for description, ok in document["targets"].items():
        print(f"target: {description}: {'met' if ok else 'MISSED'} ({load_large:.2f} s)")


def print_table(results: dict[str, dict[str, Any]], small: int, large: int) -> None:
    rows = [("measure", "result")]
    for n, key in ((small, f"write_{small}"), (large - small, f"write_{large}")):
        r = results[key]
        rows.append(
            (
                f"durable write, {n:,} records",
                f"median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, {r['per_second']:,.0f}/s, "
                f"{r['bytes_per_record']:.0f} B/record on disk",
            )
        )
    a = results["append"]
    rows.append(
        (
            f"durable append_message, {a['appends']:,}",
            f"median {a['median_ms']:.3f} ms, p99 {a['p99_ms']:.3f} ms (first of a record "
            f"{a['first_median_ms']:.3f} ms), {a['per_second']:,.0f}/s",
        )
    )
    for key, label in (
        (f"load_{small}", f"load() {small:,} records"),
        (f"load_{large}", f"load() {large:,} records"),
        (f"load_{large}_with_queues", f"load() {large:,} records + queues"),
    ):
        r = results[key]
        rows.append(
            (
                label,
                f"{r['seconds']:.3f} s, RSS +{r['rss_delta_mib']:.1f} MiB "
                f"({r['bytes_per_record']:.0f} B/record), read median {r['read_median_us']:.0f} µs",
            )
        )
    width = max(len(r[0]) for r in rows)
    for i, (left, right) in enumerate(rows):
        print(f"{left:<{width}}  {right}")
        if i == 0:
            print("-" * width + "  " + "-" * 60)


if __name__ == "__main__":
    main()
