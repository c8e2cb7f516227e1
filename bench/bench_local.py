"""How fast is the local runtime? Ours against paglets 2.0.0, same scenario, same run.

Runs ``scenarios/local_scenario.py`` (written against the paglets 2.0 authoring API only) once with our
runtime and once with the reference installed by ``_reference.py``, each in its own process inside a fresh
network namespace with only loopback up (the reference probes its LAN otherwise), and prints a table:
create -> first reply (8 in a row, and paced: one every 0.3 s), sync send (in-process proxy, and over
HTTP from another process), oneway rate, ``get_state``, and PSS per idle paglet for 10 and 100 paglets.

    .venv/bin/python bench/bench_local.py [--messages 2000] [--json out.json] [--no-reference]
                                          [--backend linux|portable|both] [--runs N]

``--backend both`` measures our runtime on the Linux and on the portable process backend side by side
(with the portable backend's targets against 2.0: 5x on create, 3x on send); ``--runs N`` repeats every
side N times, alternating, and prints medians.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _compare import Measure, add_options, backends_of, print_table, run_sides  # noqa: E402
from _reference import can_isolate_network, ensure_reference  # noqa: E402

SCENARIO = HERE / "scenarios" / "local_scenario.py"

MEASURES = [
    Measure("create_first_reply_ms", "create -> first reply, burst of 8", "ms", target=5.0, kind="create"),
    Measure("create_paced_ms", "create -> first reply, paced", "ms", target=5.0, kind="create"),
    Measure("send_embedded_us", "sync send, in-process proxy", "us", target=100.0, kind="send"),
    Measure("send_http_us", "sync send over HTTP (other process)", "us", target=400.0, kind="send"),
    Measure("oneway_per_s", "oneway messages to one paglet", "msg/s", lower_is_better=False, target=20_000.0),
    Measure("get_state_us", "get_state", "us"),
    Measure("pss_per_paglet_10_mib", "PSS per idle paglet (10)", "MiB", target=4.0),
    Measure("pss_per_paglet_100_mib", "PSS per idle paglet (100)", "MiB", target=4.0),
]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--no-reference", action="store_true", help="measure ours only")
    add_options(parser)
    args = parser.parse_args()
    backends = backends_of(args.backend)
    if args.backend:
        print(f"process backend: {args.backend}")

    isolate = can_isolate_network()
    reference = None
    if not args.no_reference:
        if isolate:
            reference = ensure_reference
        else:
            print("cannot create a network namespace: not running the reference (it scans the LAN)")
    ours, ref, raw = run_sides(
        SCENARIO,
        [str(args.messages)],
        [str(args.messages)],
        backends=backends,
        runs=args.runs,
        isolate=isolate,
        reference=reference,
        timeout=900,
        ref_timeout=1800,
    )
    if args.runs > 1:
        print(f"medians of {args.runs} runs per side")
    print_table(MEASURES, ours, ref)
    if args.json:
        first = next(iter(ours.values()))
        doc = {"ours": first, "ours_by_backend": ours, "reference": ref, "runs": raw}
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
