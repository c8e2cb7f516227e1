"""How fast do paglets move? Ours against paglets 2.0.0, same scenario, same run.

Runs ``scenarios/move_scenario.py`` (paglets 2.0 API only; host alpha in-process, host beta in a child
process) with our runtime and with the reference, each inside a network namespace with only loopback up,
plus ``scenarios/raw_tcp.py``: 64 MiB over loopback TCP between two processes, the physical floor.

    .venv/bin/python bench/bench_move.py [--rounds 5] [--reference-rounds N] [--json out.json]
                                         [--no-reference]

Both runtimes run the same number of rounds unless ``--reference-rounds`` says otherwise (2.0 is slow:
at 64 MiB a round takes it seconds); the table header prints the rounds each side ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _reference import can_isolate_network, ensure_reference, run_scenario  # noqa: E402

MEASURES = [
    ("dispatch_tiny_ms", "dispatch, tiny state", 5.0),
    ("dispatch_1MiB_random_ms", "dispatch, 1 MiB random", None),
    ("dispatch_16MiB_random_ms", "dispatch, 16 MiB random", 30.0),
    ("dispatch_16MiB_compressible_ms", "dispatch, 16 MiB compressible", 30.0),
    ("dispatch_64MiB_random_ms", "dispatch, 64 MiB random", None),
    ("dispatch_64MiB_compressible_ms", "dispatch, 64 MiB compressible", None),
    ("clone_fanout_8_ms", "clone x8 to another host (1 MiB)", None),
    ("dispatch_same_host_1MiB_ms", "dispatch to the same host (1 MiB)", None),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--reference-rounds", type=int, default=None, help="rounds for paglets 2.0.0 (default: --rounds)"
    )
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--backend",
        choices=("linux", "portable"),
        default=None,
        help="process backend of our hosts (PAGLETS_BACKEND; default: the platform's)",
    )
    args = parser.parse_args()
    if args.backend:
        os.environ["PAGLETS_BACKEND"] = args.backend  # inherited by the scenario and its host processes
        print(f"process backend: {args.backend}")
    isolate = can_isolate_network()
    scenario = HERE / "scenarios" / "move_scenario.py"
    raw = run_scenario(HERE / "scenarios" / "raw_tcp.py", python=sys.executable, isolate=isolate)
    ours = run_scenario(scenario, [str(args.rounds)], python=sys.executable, isolate=isolate, timeout=1800)
    ref: dict[str, object] = {}
    ref_rounds = args.rounds if args.reference_rounds is None else args.reference_rounds
    if not args.no_reference and isolate:
        ref = run_scenario(scenario, [str(ref_rounds)], python=ensure_reference(), timeout=3600)

    shown = f"ours {args.rounds}" + (f", 2.0.0 {ref_rounds}" if ref else ", 2.0.0 not run")
    print(f"rounds per measure: {shown} (64 MiB cases: max(3, rounds // 2); tiny: rounds * 2)")
    print(f"{'measure (ms, median)':40} {'ours':>9} {'2.0.0':>9} {'speedup':>8} {'target':>7}  met")
    for key, label, target in MEASURES:
        mine = float(ours[key])  # type: ignore[arg-type]
        theirs = float(ref[key]) if key in ref else None  # type: ignore[arg-type]
        speedup = f"{theirs / mine:.1f}x" if theirs else ""
        met = "" if target is None else ("yes" if mine <= target else "NO")
        print(
            f"{label:40} {mine:>9.1f} {'' if theirs is None else f'{theirs:.1f}':>9} {speedup:>8} "
            f"{'' if target is None else f'{target:.0f}':>7}  {met}"
        )
    floor = float(raw["raw_tcp_64MiB_ms"])  # type: ignore[arg-type]
    share = floor / float(ours["dispatch_64MiB_random_ms"])  # type: ignore[arg-type]
    print(f"raw loopback TCP, 64 MiB between two processes: {floor:.1f} ms")
    print(f"64 MiB incompressible dispatch runs at {share:.0%} of raw loopback throughput (target >= 50%)")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "reference": ref, "raw": raw}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
