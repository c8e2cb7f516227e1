"""How fast do paglets move? Ours against paglets 2.0.0, same scenario, same run.

Runs ``scenarios/move_scenario.py`` (paglets 2.0 API only; host alpha in-process, host beta in a child
process) with our runtime and with the reference, each inside a network namespace with only loopback up,
plus ``scenarios/raw_tcp.py``: 64 MiB over loopback TCP between two processes, the physical floor.

    .venv/bin/python bench/bench_move.py [--rounds 5] [--reference-rounds N] [--json out.json]
                                         [--no-reference] [--backend linux|portable|both] [--runs N]

Both runtimes run the same number of rounds unless ``--reference-rounds`` says otherwise (2.0 is slow:
at 64 MiB a round takes it seconds); the table header prints the rounds each side ran.
``--backend both`` measures our runtime on the Linux and on the portable process backend side by side
(the portable backend's target against 2.0: 3x on dispatch); ``--runs N`` repeats every side N times,
alternating, and prints medians.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _compare import Measure, add_options, backends_of, print_table, run_sides  # noqa: E402
from _reference import can_isolate_network, ensure_reference, run_scenario  # noqa: E402

MEASURES = [
    Measure("dispatch_tiny_ms", "dispatch, tiny state", "ms", target=5.0, kind="dispatch"),
    Measure("dispatch_tiny_paced_ms", "dispatch, tiny state, paced", "ms", target=5.0, kind="dispatch"),
    Measure("dispatch_1MiB_random_ms", "dispatch, 1 MiB random", "ms", kind="dispatch"),
    Measure("dispatch_16MiB_random_ms", "dispatch, 16 MiB random", "ms", target=30.0, kind="dispatch"),
    Measure(
        "dispatch_16MiB_compressible_ms", "dispatch, 16 MiB compressible", "ms", target=30.0, kind="dispatch"
    ),
    Measure("dispatch_64MiB_random_ms", "dispatch, 64 MiB random", "ms", kind="dispatch"),
    Measure("dispatch_64MiB_compressible_ms", "dispatch, 64 MiB compressible", "ms", kind="dispatch"),
    Measure("clone_fanout_8_ms", "clone x8 to another host (1 MiB)", "ms"),
    Measure("dispatch_same_host_1MiB_ms", "dispatch to the same host (1 MiB)", "ms"),
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
    add_options(parser)
    args = parser.parse_args()
    if args.backend:
        print(f"process backend: {args.backend}")
    isolate = can_isolate_network()
    raw_tcp = run_scenario(HERE / "scenarios" / "raw_tcp.py", python=sys.executable, isolate=isolate)
    ref_rounds = args.rounds if args.reference_rounds is None else args.reference_rounds
    ours, ref, raw = run_sides(
        HERE / "scenarios" / "move_scenario.py",
        [str(args.rounds)],
        [str(ref_rounds)],
        backends=backends_of(args.backend),
        runs=args.runs,
        isolate=isolate,
        reference=ensure_reference if not args.no_reference and isolate else None,
        timeout=1800,
        ref_timeout=3600,
    )

    shown = f"ours {args.rounds}" + (f", 2.0.0 {ref_rounds}" if ref else ", 2.0.0 not run")
    print(f"rounds per measure: {shown} (64 MiB cases: max(3, rounds // 2); tiny: rounds * 2)")
    if args.runs > 1:
        print(f"medians of {args.runs} runs per side")
    print_table(MEASURES, ours, ref)
    floor = float(raw_tcp["raw_tcp_64MiB_ms"])  # type: ignore[arg-type]
    print(f"raw loopback TCP, 64 MiB between two processes: {floor:.1f} ms")
    for label, result in ours.items():
        share = floor / float(result["dispatch_64MiB_random_ms"])
        print(f"64 MiB incompressible dispatch ({label}): {share:.0%} of raw loopback TCP (target >= 50%)")
    if args.json:
        first = next(iter(ours.values()))
        doc = {"ours": first, "ours_by_backend": ours, "reference": ref, "raw": raw_tcp, "runs": raw}
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
