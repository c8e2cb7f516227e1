"""Where a move's time goes: the phases of one dispatch on both hosts, on one clock.

Host alpha runs in this process, host beta in a child process; both wrap the movement engine's steps
(source and target drivers, the paglet manager, the controller, the durable writes, alpha's HTTP
requests) with timers, on ``time.perf_counter()``, which is the same monotonic clock in both processes.
For each state size it dispatches ``--rounds`` paglets alpha -> beta and prints the timeline of the
median dispatch: start and end of every step in milliseconds from the call, its duration, and its host.
Steps that overlap are nested calls or work of the other host meanwhile.

    .venv/bin/python bench/bench_phases.py                       # tiny, 1 MiB and 64 MiB states
    .venv/bin/python bench/bench_phases.py --sizes 0 16777216 --rounds 20

This is a profile, not a benchmark: the timers cost a few microseconds per step, and the numbers move
with the machine's load (run it on a quiet machine). ``bench_move.py`` gives the numbers to compare.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "scenarios"))

#: ``(module, class or None, [names])`` of the coroutine functions whose calls are timed.
STEPS: list[tuple[str, str | None, list[str]]] = [
    ("paglets.runtime._move_source", "SourceDriver", ["preflight", "_send_envelope", "_write_decision"]),
    ("paglets.runtime._move_source", "SourceDriver", ["_commit", "_forget"]),
    ("paglets.runtime._move_source", None, ["leaving_hooks", "stage_files"]),
    ("paglets.runtime._move_target", "TargetDriver", ["prepare", "commit", "_write_executed", "_start_run"]),
    ("paglets.runtime._move_target", "TargetDriver", ["forget"]),
    ("paglets.runtime._paglets", "PagletManager", ["_spawn", "_start_hook", "release_when_idle"]),
    ("paglets.runtime._movement", "MovementEngine", ["write_record"]),
    ("paglets.runtime._controller", "PagletController", ["snapshot"]),
]

EVENTS: list[tuple[float, float, str]] = []
WORST = "--worst" in sys.argv

BETA = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {bench!r})
    sys.path.insert(0, {scenarios!r})
    import bench_phases
    bench_phases.instrument()
    from paglets.runtime.host import Host
    host = Host("beta", persistence_dir={tmp!r}, mesh_lan_discovery=False, mesh_multicast=False)
    host.start_background()
    print(host.address, flush=True)
    sys.stdin.read()
    print(json.dumps(bench_phases.EVENTS), flush=True)
    host.stop()
    """
)


def _timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            EVENTS.append((started, time.perf_counter(), label))

    return timed


def instrument() -> None:
    """Wrap every step of ``STEPS`` (in this process) with a timer."""
    import importlib

    for module_name, class_name, names in STEPS:
        module = importlib.import_module(module_name)
        owner: Any = module if class_name is None else getattr(module, class_name)
        for name in names:
            label = name if class_name is None else f"{class_name}.{name}"
            setattr(owner, name, _timed(label, getattr(owner, name)))


def _time_requests(host: Any) -> None:
    client = host.aclient
    request = client.request

    async def timed(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await request(method, url, *args, **kwargs)
        finally:
            path = "/".join(p if len(p) < 20 else "{id}" for p in url.split("/", 3)[-1].split("/"))
            EVENTS.append((started, time.perf_counter(), f"HTTP {method} /{path}"))

    client.request = timed


def measure(size: int, rounds: int) -> None:
    from _bench_agents import BenchPaglet, BenchState

    from paglets.runtime.host import Host

    with tempfile.TemporaryDirectory() as tmp:
        beta = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BETA.format(bench=str(HERE), scenarios=str(HERE / "scenarios"), tmp=tmp + "/beta"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp,
        )
        alpha = Host("alpha", persistence_dir=tmp + "/alpha", mesh_lan_discovery=False, mesh_multicast=False)
        alpha.start_background()
        try:
            assert beta.stdout is not None
            assert beta.stdin is not None
            url = beta.stdout.readline().strip()
            _time_requests(alpha)
            payload = os.urandom(size)
            # warm-up: beta's first paglet waits for its template process, started after it began serving
            alpha.dispatch(alpha.create(BenchPaglet, BenchState()).agent_id, url).dispose()
            EVENTS.clear()
            spans: list[tuple[float, float]] = []
            for _ in range(rounds):
                proxy = alpha.create(BenchPaglet, BenchState(payload=payload))
                started = time.perf_counter()
                moved = alpha.dispatch(proxy.agent_id, url)
                spans.append((started, time.perf_counter()))
                moved.dispose()
            beta.stdin.close()
            theirs = json.loads(beta.stdout.readline())
        finally:
            alpha.stop()
            if beta.stdin is not None and not beta.stdin.closed:
                beta.stdin.close()
            beta.wait(60)
    durations = sorted(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
    begin, end = spans[durations[-1 if WORST else len(durations) // 2]]
    label = "tiny" if size == 0 else f"{size / (1 << 20):g} MiB"
    print(f"\ndispatch alpha -> beta, {label} state: median of {rounds} = {(end - begin) * 1e3:.2f} ms")
    print(f"  all: {', '.join(f'{(b - a) * 1e3:.1f}' for a, b in sorted(spans, key=lambda s: s[1] - s[0]))}")
    print(f"  {'from':>8} {'to':>8} {'ms':>7}  host   step")
    rows = [(a, b, "alpha", k) for a, b, k in EVENTS] + [(a, b, "beta", k) for a, b, k in theirs]
    for a, b, host, step in sorted(r for r in rows if begin - 1e-4 <= r[0] <= end):
        print(f"  {(a - begin) * 1e3:8.2f} {(b - begin) * 1e3:8.2f} {(b - a) * 1e3:7.2f}  {host:6} {step}")
    totals: dict[str, list[float]] = {}
    for a, b, k in EVENTS:
        totals.setdefault(k, []).append(b - a)
    EVENTS.clear()
    shown = [(k, v) for k, v in totals.items() if k.startswith(("HTTP", "MovementEngine"))]
    print(
        "  medians over all rounds (alpha): "
        + ", ".join(f"{k} {statistics.median(v) * 1e3:.2f}" for k, v in shown)
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[0, 1 << 20, 64 << 20])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--worst", action="store_true", help="show the slowest dispatch, not the median")
    args = parser.parse_args()
    instrument()
    for size in args.sizes:
        measure(size, args.rounds if size < (16 << 20) else max(3, args.rounds // 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
