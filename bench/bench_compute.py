"""Compute slots: how long do 12 one-second jobs take on 3 hosts, ours against paglets 2.0.0?

Each variant runs ``bench/scenarios/compute_scenario.py`` in its own process: 3 hosts on loopback with
the bundled launch config, 12 compute jobs (1 core, 64 MiB, estimate 1 s, each spinning the CPU for 1 s)
created at once on the first host, timed from the first submit until every job has finished. Both
runtimes see the machine's own capacity (every host offers its logical CPUs). Variants: jobs may run on
the submitting host too (``home``), or only elsewhere (``away``, 2.0's default).

The reference runs under ``unshare -n`` (loopback only) with ``mesh_lan_discovery=False,
mesh_multicast=False``, and with its load gate raised (``max_load_per_cpu = 1000``): with its default
(1.0) it grants nothing at all while the machine's load average per CPU is 1 or more, which on a shared
2-core machine is most of the time. Its 15 s grant spacing and 5 s loop stay as they ship.

    .venv/bin/python bench/bench_compute.py                 # both variants, ~4 min (the reference is slow)
    .venv/bin/python bench/bench_compute.py --quick         # the "home" variant only
    .venv/bin/python bench/bench_compute.py --no-reference  # ours only
    .venv/bin/python bench/bench_compute.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SCENARIO = BENCH_DIR / "scenarios" / "compute_scenario.py"
VARIANTS = {"home": ["--home-compute"], "away": []}


def run_all(variants: list[str], jobs: int, seconds: float, with_reference: bool) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    from _reference import can_isolate_network, run_scenario

    reference_ok = with_reference and can_isolate_network()
    results: dict[str, Any] = {"jobs": jobs, "seconds": seconds, "hosts": 3, "variants": {}}
    for variant in variants:
        args = ["--jobs", str(jobs), "--seconds", str(seconds), *VARIANTS[variant]]
        entry = {
            "ours": run_scenario(SCENARIO, ["--impl", "ours", *args], python=sys.executable, isolate=False)
        }
        if reference_ok:
            entry["reference"] = run_scenario(SCENARIO, ["--impl", "ref", *args], timeout=900)
        results["variants"][variant] = entry
    if with_reference and not reference_ok:
        results["reference_skipped"] = "cannot create a network namespace (unshare -n)"
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    return results


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_table(results: dict[str, Any]) -> None:
    print(
        f"{results['jobs']} jobs of {results['seconds']:g} s on {results['hosts']} hosts, submitted at once "
        "(seconds from the first submit; reference: LAN scan and multicast off, load gate raised)"
    )
    print(f"{'variant / measure':<44} | {'ours':>7} | {'2.0.0':>7} | {'2.0 / ours':>10}")
    print("-" * 78)
    for variant, entry in results["variants"].items():
        ours, ref = entry["ours"], entry.get("reference", {})
        rows = (
            ("all jobs done", "total_s"),
            ("first job started", "first_start_s"),
            ("all jobs created", "create_s"),
        )
        for label, key in rows:
            a, b = ours.get(key), ref.get(key)
            ratio = f"{b / a:.1f}x" if a and b else "-"
            print(f"{variant + ': ' + label:<44} | {_fmt(a):>7} | {_fmt(b):>7} | {ratio:>10}")
        placed = f"ours {ours.get('per_host')}, 2.0 {ref.get('per_host', '-')}"
        print(f"{variant + ': jobs per host':<44} | {placed}")
        if ref and ref.get("finished") != ref.get("jobs"):
            print(
                f"  (2.0 finished {ref.get('finished')} of {ref.get('jobs')} within the scenario's timeout)"
            )
    if "reference_skipped" in results:
        print(f"(reference skipped: {results['reference_skipped']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="the home variant only")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    variants = ["home"] if args.quick else ["home", "away"]
    results = run_all(variants, args.jobs, args.seconds, not args.no_reference)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
