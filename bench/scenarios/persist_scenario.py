"""One run of the persistence scenario. Measures use only the paglets 2.0 API, so it runs on both runtimes.

Prints one JSON object (last stdout line):

- ``deactivate_ms`` / ``activate_ms``: medians of ``Host.deactivate(id)`` and ``Host.activate(id)`` of a
  small paglet, ``cycles`` times (the first cycle is a warm-up), and ``activate_reply_ms``: activate
  until the answer of a first sync message;
- ``append_per_s``: messages queued per second to an inactive paglet whose policy queues
  (``Host.deliver_message`` answers ``{"queued": true}``), ``appends`` of them, with the median latency of
  the first and of the last 100; then the paglet is activated and must have applied every one of them;
- ``start_<N>_s``: host start time (``Host(...)`` + ``start_background()``) with N inactive records on
  disk, median of ``repeats`` starts, each in a fresh process (imports are not timed), with its RSS.

Making N records through the API would take hours on the reference (one interpreter per paglet), so the
set-up makes one real record through the API and copies it N-1 times under new ids, in each runtime's own
way: ours through ``RecordStore`` (not synced per record; one ``sync`` before the starts), the reference
by copying its ``inactive/<id>.json`` file (contract §5.5) with the id replaced. The page cache is warm.

    python persist_scenario.py [--cycles 30] [--appends 1000] [--records 0,5000,100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_agents import BenchPaglet, BenchState

from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime.host import Host

#: True when running on our runtime (the reference has no ``RecordStore``).
OURS = importlib.util.find_spec("paglets.persistence._records") is not None
#: Seconds one timed host start (a subprocess) may take, 100,000 records included.
START_TIMEOUT = 600.0
#: Seconds the queued messages may take to be applied after the activation.
DRAIN_TIMEOUT = 300.0
#: Latencies of this many appends at the end of the run are reported apart (the reference rewrites the
#: whole record for every message, so its appends slow down as the queue grows).
TAIL = 100


def new_host(directory: Path | str, name: str = "bench") -> Host:
    return Host(name, persistence_dir=directory, mesh_lan_discovery=False, mesh_multicast=False)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- deactivate / activate / queue ----------------------------------------------------------------------


def measure_cycles(host: Host, cycles: int) -> dict[str, float]:
    proxy = host.create(BenchPaglet, BenchState(notes=["a note"] * 8))
    proxy.send(Message("add"))
    agent_id = proxy.agent_id
    deactivations: list[float] = []
    activations: list[float] = []
    replies: list[float] = []
    for _ in range(cycles + 1):
        t0 = time.perf_counter()
        host.deactivate(agent_id)
        t1 = time.perf_counter()
        host.activate(agent_id)
        t2 = time.perf_counter()
        count = host.deliver_message(agent_id, Message("count"))
        t3 = time.perf_counter()
        if count != 1:
            raise RuntimeError(f"the paglet lost its state across deactivation: count {count}")
        deactivations.append(t1 - t0)
        activations.append(t2 - t1)
        replies.append(t3 - t1)
    host.dispose(agent_id)
    return {
        "deactivate_ms": median_ms(deactivations[1:]),
        "activate_ms": median_ms(activations[1:]),
        "activate_reply_ms": median_ms(replies[1:]),
    }


def measure_appends(host: Host, appends: int) -> dict[str, float]:
    proxy = host.create(BenchPaglet, BenchState())
    agent_id = proxy.agent_id
    policy = DeactivationPolicy(activate_on_message=False, queue_messages_when_inactive=True)
    host.deactivate(agent_id, DeactivationRequest(policy=policy))
    latencies: list[float] = []
    began = time.perf_counter()
    for _ in range(appends):
        t0 = time.perf_counter()
        reply = host.deliver_message(agent_id, Message("add"))
        latencies.append(time.perf_counter() - t0)
        if not (isinstance(reply, dict) and reply.get("queued") is True):
            raise RuntimeError(f"a message to the inactive paglet was not queued: {reply!r}")
    total = time.perf_counter() - began
    host.activate(agent_id)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while (count := host.deliver_message(agent_id, Message("count"))) < appends:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {appends} queued messages applied after activation")
    if count != appends:
        raise RuntimeError(f"{count} messages applied, {appends} queued")
    host.dispose(agent_id)
    return {
        "append_per_s": appends / total,
        "append_first_ms": median_ms(latencies[:TAIL]),
        "append_last_ms": median_ms(latencies[-TAIL:]),
    }


# --- many inactive records ------------------------------------------------------------------------------


def make_records(directory: Path, count: int) -> None:
    """``count`` inactive records in ``directory``: one made through the API, the rest copies of it."""
    if count == 0:
        return
    host = new_host(directory)
    host.start_background()  # (the reference returns None here: no chaining)
    try:
        proxy = host.create(BenchPaglet, BenchState(count=7, notes=["a note"] * 8))
        proxy.send(Message("add"))
        host.deactivate(proxy.agent_id)
    finally:
        host.stop()
    (copy_ours if OURS else copy_reference)(directory, proxy.agent_id, count - 1)
    os.sync()  # the writeback of the copies must not compete with the timed starts


def copy_ours(directory: Path, template: str, copies: int) -> None:
    import msgspec

    from paglets.persistence._records import RecordStore

    with RecordStore(directory, durable=False) as store:
        store.load()
        record = store.read(template)
        for _ in range(copies):
            store.write(msgspec.structs.replace(record, agent_id=uuid.uuid4().hex))


def copy_reference(directory: Path, template: str, copies: int) -> None:
    inactive = directory / "inactive"
    text = (inactive / f"{template}.json").read_text(encoding="utf-8")
    for _ in range(copies):
        agent_id = uuid.uuid4().hex
        (inactive / f"{agent_id}.json").write_text(text.replace(template, agent_id), encoding="utf-8")


def timed_start(directory: Path, expected: int) -> dict[str, float]:
    """One start in this (fresh) process; checks that every record is listed."""
    t0 = time.perf_counter()
    host = new_host(directory, "bench-start")
    host.start_background()
    seconds = time.perf_counter() - t0
    rss = rss_mib()
    try:
        listed = len(host.list_agents(active=False, inactive=True))
    finally:
        host.stop()
    if listed != expected:
        raise RuntimeError(f"the host lists {listed} inactive paglets, {expected} records were made")
    return {"seconds": seconds, "rss_mib": rss}


def measure_starts(counts: list[int], repeats: int) -> dict[str, float]:
    result: dict[str, float] = {}
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="persist-bench-") as tmp:
            directory = Path(tmp)
            began = time.perf_counter()
            make_records(directory, count)
            setup = time.perf_counter() - began
            runs = [start_in_subprocess(directory, count) for _ in range(repeats)]
        result[f"start_{count}_s"] = statistics.median(r["seconds"] for r in runs)
        result[f"start_{count}_rss_mib"] = statistics.median(r["rss_mib"] for r in runs)
        result[f"start_{count}_setup_s"] = setup
    return result


def start_in_subprocess(directory: Path, count: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--start", str(directory), str(count)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"timed start with {count} records failed:\n{done.stderr[-4000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--records", default="0,5000,100000", help="comma-separated record counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--start", nargs=2, metavar=("DIR", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.start:
        print(json.dumps(timed_start(Path(args.start[0]), int(args.start[1]))))
        return
    result: dict[str, Any] = {"runtime": "ours" if OURS else "reference"}
    with tempfile.TemporaryDirectory(prefix="persist-bench-") as tmp:
        host = new_host(tmp)
        host.start_background()
        try:
            result.update(measure_cycles(host, args.cycles))
            result.update(measure_appends(host, args.appends))
        finally:
            host.stop()
    counts = [int(c) for c in args.records.split(",") if c.strip()]
    result.update(measure_starts(counts, args.repeats))
    result["records"] = counts
    print(json.dumps(result))


if __name__ == "__main__":
    main()
