"""Relay: message round trip and dispatch (tiny, 16 MiB) through a hub versus direct, ours and 2.0's.

Both runtimes run ``scenarios/relay_scenario.py`` (a hub with an API key and a public URL, two
connect-mode hosts, one direct host, all in one process, plain HTTP on loopback); the reference runs in
a network namespace of its own with LAN discovery and multicast off. Prints a table (ours, reference,
ratio) and, with ``--json FILE``, writes the numbers.

Usage: ``.venv/bin/python bench/bench_relay.py [--rounds N] [--json FILE] [--no-reference]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _reference import can_isolate_network, run_scenario

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenarios" / "relay_scenario.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    ours = run_scenario(SCENARIO, [str(args.rounds)], python=sys.executable, isolate=False)
    reference: dict[str, object] = {}
    if not args.no_reference and can_isolate_network():
        try:
            reference = run_scenario(SCENARIO, [str(args.rounds)], timeout=900)
        except RuntimeError as exc:
            print(f"reference run failed: {exc}", file=sys.stderr)
    print("| measure | ours | 2.0.0 | ratio |\n|---|---|---|---|")
    for key, value in ours.items():
        ref = reference.get(key)
        ratio = f"{float(ref) / float(value):.1f}x" if isinstance(ref, int | float) and value else "-"
        shown = f"{float(ref):.2f}" if isinstance(ref, int | float) else "-"
        print(f"| {key} | {float(value):.2f} | {shown} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "reference": reference}, indent=2))


if __name__ == "__main__":
    main()
