"""How fast is the local runtime? Ours against paglets 2.0.0, same scenario, same run.

Runs ``scenarios/local_scenario.py`` (written against the paglets 2.0 authoring API only) once with our
runtime and once with the reference installed by ``_reference.py``, each in its own process inside a fresh
network namespace with only loopback up (the reference probes its LAN otherwise), and prints a table:
create -> first reply, sync send (in-process proxy, and over HTTP from another process), oneway rate,
``get_state``, and PSS per idle paglet for 10 and 100 paglets.

    .venv/bin/python bench/bench_local.py [--messages 2000] [--json out.json] [--no-reference]
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

SCENARIO = HERE / "scenarios" / "local_scenario.py"

#: (key, label, unit, lower is better, our target)
MEASURES = [
    ("create_first_reply_ms", "create -> first reply", "ms", True, 5.0),
    ("send_embedded_us", "sync send, in-process proxy", "us", True, 100.0),
    ("send_http_us", "sync send over HTTP (other process)", "us", True, 400.0),
    ("oneway_per_s", "oneway messages to one paglet", "msg/s", False, 20_000.0),
    ("get_state_us", "get_state", "us", True, None),
    ("pss_per_paglet_10_mib", "PSS per idle paglet (10)", "MiB", True, 4.0),
    ("pss_per_paglet_100_mib", "PSS per idle paglet (100)", "MiB", True, 4.0),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--no-reference", action="store_true", help="measure ours only")
    parser.add_argument(
        "--backend",
        choices=("linux", "portable"),
        default=None,
        help="process backend of our host (PAGLETS_BACKEND; default: the platform's)",
    )
    args = parser.parse_args()
    if args.backend:
        os.environ["PAGLETS_BACKEND"] = args.backend  # inherited by the scenario process
        print(f"process backend: {args.backend}")

    isolate = can_isolate_network()
    ours = run_scenario(SCENARIO, [str(args.messages)], python=sys.executable, isolate=isolate, timeout=900)
    ref: dict[str, object] = {}
    if not args.no_reference:
        if not isolate:
            print("cannot create a network namespace: not running the reference (it scans the LAN)")
        else:
            ref = run_scenario(SCENARIO, [str(args.messages)], python=ensure_reference(), timeout=1800)

    print(f"{'measure':38} {'unit':>6} {'ours':>10} {'2.0.0':>10} {'speedup':>8} {'target':>9}  met")
    for key, label, unit, lower_better, target in MEASURES:
        mine = float(ours[key])  # type: ignore[arg-type]
        theirs = float(ref[key]) if key in ref else None  # type: ignore[arg-type]
        speedup = ""
        if theirs:
            speedup = f"{(theirs / mine if lower_better else mine / theirs):.1f}x"
        met = ""
        if target is not None:
            met = "yes" if (mine <= target if lower_better else mine >= target) else "NO"
        shown_target = "" if target is None else f"{target:,.0f}"
        print(
            f"{label:38} {unit:>6} {mine:>10,.1f} {'' if theirs is None else f'{theirs:,.1f}':>10} "
            f"{speedup:>8} {shown_target:>9}  {met}"
        )
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "reference": ref}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
