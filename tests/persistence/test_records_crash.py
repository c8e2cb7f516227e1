"""Crash consistency with real SIGKILLs.

A worker process (``_records_crash_worker.py``) runs random writes, queued-message appends, deletes and
activations (read + delete) on a durable store, announcing each operation before it starts and
acknowledging it once it returned. The test kills it with SIGKILL at a random moment, reopens the store
and checks the contract of the store:

- every acknowledged operation is reflected; the one operation in flight at the kill is either fully
  there or not at all (a record has its old or its new state and queue, a message is queued or not);
- nothing is corrupt (no quarantine report, every state passes its own embedded hash), nothing is
  duplicated (queues equal the model exactly), nothing unknown appears, no crash debris survives a load.

Then the next round starts a new worker on the same directory.
"""

from __future__ import annotations

import hashlib
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from paglets.persistence._records import RecordStore

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_records_crash_worker.py"
ROUNDS = 30
SEED = 20_240_607
#: Seconds a worker may take to start and print READY (a loaded CI machine can be slow).
READY_TIMEOUT = 30.0

Snapshot = dict[str, tuple[str, tuple[str, ...]]]  # agent id -> (state token, queued message tokens)


def state_token(state: bytes | bytearray) -> str:
    head, _, digest = bytes(state).rpartition(b"|")
    assert hashlib.sha256(head + b"|").hexdigest().encode() == digest, "state content corrupt"
    return head.split(b"|", 1)[0].decode()


def observe(root: Path) -> Snapshot:
    reports: list[tuple[str, str]] = []
    with RecordStore(root, on_quarantine=lambda *r: reports.append(r)) as store:
        store.load()
        snapshot: Snapshot = {}
        for summary in store.summaries():
            record = store.read(summary.agent_id)
            tokens = tuple(m.message["args"]["tok"] for m in record.queued_messages)
            assert summary.queued_count == len(tokens)
            assert summary.state_length == len(record.state)
            snapshot[summary.agent_id] = (state_token(record.state), tokens)
        leftovers = [
            n for n in os.listdir(store.directory) if n != ".lock" and not n.endswith((".rec", ".q"))
        ]
    assert reports == [], reports
    assert leftovers == [], leftovers
    return snapshot


def apply(model: Snapshot, line: str) -> Snapshot:
    """The model after the operation announced by ``line`` (``B <op> <id> ...``)."""
    parts = line.split()
    op, agent_id = parts[1], parts[2]
    new = dict(model)
    if op == "W":
        token, keep, inline = parts[3], parts[4] == "1", () if parts[5] == "-" else tuple(parts[5].split(","))
        kept = model[agent_id][1] if keep and agent_id in model else ()
        new[agent_id] = (token, kept + inline)
    elif op == "Q":
        state, queued = model[agent_id]
        new[agent_id] = (state, (*queued, parts[3]))
    else:  # D, R
        del new[agent_id]
    return new


def run_worker(root: Path, round_number: int, delay: float) -> list[str]:
    """Start a worker, let it run ``delay`` seconds after READY, SIGKILL it; returns its lines."""
    with subprocess.Popen(
        [sys.executable, str(WORKER), str(root), str(SEED), str(round_number)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        fd = proc.stdout.fileno()
        buffer = bytearray()
        kill_at: float | None = None
        deadline = time.monotonic() + READY_TIMEOUT
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if kill_at is None and b"READY\n" in buffer:
                    kill_at = now + delay
                limit = kill_at if kill_at is not None else deadline
                if now >= limit:
                    break
                if selector.select(limit - now):
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break  # the worker exited by itself: reported below
                    buffer += chunk
        proc.kill()
        proc.wait(timeout=30)
        buffer += proc.stdout.read()
        errors = proc.stderr.read().decode(errors="replace")
    assert kill_at is not None, f"worker never became ready: {errors}"
    assert proc.returncode == -signal.SIGKILL, f"worker failed by itself:\n{errors}"
    lines = buffer.decode().splitlines()
    assert lines[0] == "READY"
    if lines and not buffer.endswith(b"\n"):
        lines.pop()  # a line cut by the kill was never acknowledged
    return lines[1:]


def test_sigkill_at_random_moments_never_loses_or_corrupts(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    model: Snapshot = {}
    in_flight: Counter[str] = Counter()
    acknowledged = 0
    for round_number in range(ROUNDS):
        delay = rng.choice((rng.uniform(0, 0.005), rng.uniform(0.005, 0.05), rng.uniform(0.05, 0.25)))
        pending: str | None = None
        for line in run_worker(tmp_path, round_number, delay):
            if line.startswith("B "):
                assert pending is None
                pending = line
            else:
                assert line == "A"
                assert pending is not None
                model = apply(model, pending)
                pending = None
                acknowledged += 1
        observed = observe(tmp_path)
        if pending is None:
            assert observed == model
        else:
            in_flight[pending.split()[1]] += 1
            done = apply(model, pending)
            assert observed in (model, done), f"round {round_number}: in flight {pending!r}"
        model = observed
    # the kills did land in the middle of operations (timing varies; these bounds are very loose)
    assert acknowledged >= ROUNDS
    assert sum(in_flight.values()) >= ROUNDS // 3, in_flight
