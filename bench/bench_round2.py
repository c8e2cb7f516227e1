"""The performance table in one run: ours and paglets 2.0.0 side by side, with the raw floors beside them.

Runs the benches that answer each row (each writes JSON) and prints one table with the targets:

- ``bench_local.py`` (ours and 2.0): create -> first reply, sync send through an in-process proxy, one-way
  messages to one paglet, PSS per idle paglet (10 and 100);
- ``bench_move.py`` (ours and 2.0, raw loopback TCP in the same run): dispatch of a tiny, a 16 MiB and a
  64 MiB state, a clone fan-out of 8;
- ``bench_ipc.py`` (floors): zygote fork -> first frame, ring round trip;
- ``bench_transfer_records.py`` (floor): one small ``fdatasync``, and the transfer record write a move
  makes twice (back to back, and after 10 ms of quiet, as in a move);
- ``bench_scale.py``: an empty host's start (ours and 2.0), 1,000 paglets on one host, and with
  ``--mesh 50`` the mesh rows (50 host processes with the default launch config; several minutes).

    .venv/bin/python bench/bench_round2.py [--runs 5] [--mesh 50] [--json out.json] [--backend both]

Every number is a median over the runs of this invocation (``--runs`` runs of the local and move
benches, alternating ours and 2.0, each itself a median). ``--backend both`` adds the local and move
tables with our Linux and portable backends side by side. Run it on a quiet machine: two cores are
easily saturated by anything running beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_local  # noqa: E402
import bench_move  # noqa: E402
from _compare import BACKENDS, print_table  # noqa: E402


def _bench(script: str, *args: str, json_file: bool = True, timeout: float = 3600) -> dict[str, Any]:
    """Run ``bench/<script>`` and return its JSON (written to a file, or printed with ``--json``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        argv = [sys.executable, str(HERE / script), *args]
        argv += ["--json", str(out)] if json_file else ["--json"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{script} failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.read_text() if json_file else done.stdout)
        return result


def _median(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mesh", type=int, nargs="*", default=[], help="mesh sizes (e.g. 50); none: skip")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "both"),
        default=None,
        help="process backend of our hosts; 'both': the table for the first (linux), then both side by side",
    )
    args = parser.parse_args()

    runs = ["--runs", str(args.runs)] + (["--backend", args.backend] if args.backend else [])
    local = [_bench("bench_local.py", *runs)]
    move = [_bench("bench_move.py", "--rounds", "5", "--reference-rounds", "3", *runs)]
    ipc = _bench("bench_ipc.py", json_file=False)
    records = _bench("bench_transfer_records.py", "--count", "300")
    scale_rows = ["start", "paglets"] + (["mesh"] if args.mesh else [])
    scale_args = ["--rows", *scale_rows, "--runs", str(args.runs)]
    if args.mesh:
        scale_args += ["--sizes", *map(str, args.mesh)]
    scale = _bench("bench_scale.py", *scale_args, json_file=False, timeout=7200)

    def pair(runs: list[dict[str, Any]], key: str) -> tuple[float | None, float | None]:
        return _median(runs, "ours", key), _median(runs, "reference", key)

    rows: list[tuple[str, float | None, float | None, str, str]] = []

    def faster(label: str, runs: list[dict[str, Any]], key: str, unit: str, target: str) -> None:
        ours, ref = pair(runs, key)
        rows.append((label + f" ({unit})", ours, ref, "speedup", target))

    faster("create -> first reply", local, "create_first_reply_ms", "ms", ">= 60x; <= 2x fork floor")
    faster("sync send, in-process proxy", local, "send_embedded_us", "us", ">= 20x; <= 1.3x ring floor")
    faster("dispatch, tiny state", move, "dispatch_tiny_ms", "ms", ">= 50x")
    faster("dispatch, 16 MiB random", move, "dispatch_16MiB_random_ms", "ms", ">= 20x")
    faster("dispatch, 64 MiB random", move, "dispatch_64MiB_random_ms", "ms", ">= 50% of raw TCP")
    faster("clone x8 to another host", move, "clone_fanout_8_ms", "ms", ">= 25x")
    ours_oneway, ref_oneway = pair(local, "oneway_per_s")
    rows.append(("one-way messages to one paglet (msg/s)", ours_oneway, ref_oneway, "rate", ">= 100x"))
    for n in (10, 100):
        ours_pss, ref_pss = pair(local, f"pss_per_paglet_{n}_mib")
        rows.append((f"PSS per idle paglet, {n} (MiB)", ours_pss, ref_pss, "plain", "<= 3 MiB"))
    start = scale["rows"]["start"]
    rows.append((
        "empty host: constructor -> serving (ms)",
        start.get("ours", {}).get("serving_ms_median"),
        start.get("2.0.0", {}).get("serving_ms_median"),
        "speedup",
        "<= 2x 2.0",
    ))  # fmt: skip

    print(f"{'measure':44} {'ours':>10} {'2.0.0':>10} {'ratio':>9}  target")
    for label, ours, ref, kind, target in rows:
        ratio = ""
        if ours and ref:
            ratio = (
                f"{ref / ours:.1f}x" if kind == "speedup" else f"{ours / ref:.1f}x" if kind == "rate" else ""
            )
        shown = [f"{v:.3g}" if v is not None else "-" for v in (ours, ref)]
        print(f"{label:44} {shown[0]:>10} {shown[1]:>10} {ratio:>9}  {target}")

    raw = _median(move, "raw", "raw_tcp_64MiB_ms")
    big = _median(move, "ours", "dispatch_64MiB_random_ms")
    fork = ipc.get("startup", {}).get("zygote_fork_first_frame_ms")
    ring = ipc.get("roundtrip", {}).get("ring_uvloop_median_us")
    create = _median(local, "ours", "create_first_reply_ms")
    send = _median(local, "ours", "send_embedded_us")
    print("\nfloors, same run")
    if raw and big:
        print(f"  raw loopback TCP, 64 MiB: {raw:.1f} ms; a 64 MiB dispatch runs at {raw / big:.0%} of it")
    if fork and create:
        print(
            f"  zygote fork -> first frame: {fork:.2f} ms; create -> first reply is {create / fork:.1f}x that"
        )
    if ring and send:
        print(f"  ring round trip: {ring:.1f} us; a sync send is {send / ring:.1f}x that")
    print(
        f"  small fdatasync: {records['fdatasync_floor_ms']:.3f} ms back to back, "
        f"{records['fdatasync_spaced_ms']:.3f} ms after 10 ms of quiet; transfer record write "
        f"{records['record_write_ms']:.3f} / {records['record_write_spaced_ms']:.3f} ms (two per move)"
    )
    paglets = scale["rows"].get("paglets", {}).get("ours", {})
    if "create_s" in paglets:
        print(
            f"\n1,000 paglets on one host: created in {paglets['create_s']:.2f} s (target <= 5), "
            f"PSS {paglets['pss_gib']:.2f} GiB (<= 4), "
            f"a message to each in {paglets['message_each_s']:.2f} s (<= 1)"
        )
    for key, row in scale["rows"].items():
        if key.startswith("mesh "):
            for label, r in row.items():
                print(
                    f"{key} {label}: converge {r.get('converge_s')} s "
                    f"(after serving {r.get('converge_after_serving_s')}), "
                    f"idle CPU {r.get('idle_cpu_pct_total')} % of a core (targets <= 10 s, <= 10 %)"
                )
    if args.backend == "both":
        for doc, measures in ((local[0], bench_local.MEASURES), (move[0], bench_move.MEASURES)):
            print()
            print_table(measures, doc["ours_by_backend"], doc["reference"])
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"local": local, "move": move, "ipc": ipc, "records": records, "scale": scale}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
