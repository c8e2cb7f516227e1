"""What does keeping paglets inactive cost? Ours against paglets 2.0.0, same scenario, same run.

Runs ``scenarios/persist_scenario.py`` (written against the paglets 2.0 authoring API; see its docstring
for how each number is taken and how the many records are made) once with our runtime and once with the
reference installed by ``_reference.py``, each in its own process inside a fresh network namespace with
only loopback up, and prints a table: deactivate and activate latency (medians; activate target 10 ms),
activate until the first reply, queued-message append rate and latency (first and last 100 appends: the
reference rewrites the whole record per message), host start time and RSS with 0, 5,000 and 100,000
inactive records (medians of fresh-process starts; target for 100,000: 2 s, as in ``bench_records.py``).

Our deactivation and append are durable (fdatasync, rename, directory fsync); the reference's are not
(rename without fsync). Our start includes launching the zygote (~0.2 s here); the reference starts no
process until a paglet is created. The page cache is warm (records were just written).

    .venv/bin/python bench/bench_persist.py                 # about 3 minutes
    .venv/bin/python bench/bench_persist.py --quick         # fewer cycles, up to 5,000 records
    .venv/bin/python bench/bench_persist.py --no-reference  # ours only
    .venv/bin/python bench/bench_persist.py --json out.json # also write the raw results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _reference import can_isolate_network, ensure_reference, run_scenario  # noqa: E402

SCENARIO = HERE / "scenarios" / "persist_scenario.py"
#: Seconds one scenario run may take (the reference with 100,000 records needs about a minute).
SCENARIO_TIMEOUT = 1800.0
#: Activation target (DESIGN.md: activate from disk, reference about 225 ms).
ACTIVATE_TARGET_MS = 10.0
#: Start-time target for 100,000 inactive records (the record-store issue; see bench_records.py).
START_100K_TARGET_S = 2.0

#: (key, label, unit, lower is better, our target)
FIXED_MEASURES: list[tuple[str, str, str, bool, float | None]] = [
    ("deactivate_ms", "deactivate (small state)", "ms", True, None),
    ("activate_ms", "activate", "ms", True, ACTIVATE_TARGET_MS),
    ("activate_reply_ms", "activate -> first reply", "ms", True, ACTIVATE_TARGET_MS),
    ("append_per_s", "queued appends to an inactive paglet", "msg/s", False, None),
    ("append_first_ms", "queued append, first 100", "ms", True, None),
    ("append_last_ms", "queued append, last 100", "ms", True, None),
]


def start_measures(counts: list[int]) -> list[tuple[str, str, str, bool, float | None]]:
    rows: list[tuple[str, str, str, bool, float | None]] = []
    for count in counts:
        target = START_100K_TARGET_S if count == 100_000 else None
        rows.append((f"start_{count}_s", f"host start, {count:,} inactive records", "s", True, target))
        rows.append((f"start_{count}_rss_mib", f"host RSS, {count:,} inactive records", "MiB", True, None))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=30, help="deactivate/activate cycles")
    parser.add_argument("--appends", type=int, default=1000, help="messages queued to one inactive paglet")
    parser.add_argument("--records", default="0,5000,100000", help="record counts for the start times")
    parser.add_argument(
        "--ref-records", default=None, help="record counts for the reference (default: --records)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="starts per record count")
    parser.add_argument("--quick", action="store_true", help="10 cycles, 300 appends, up to 5,000 records")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--no-reference", action="store_true", help="measure ours only")
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.appends, args.records, args.repeats = 10, 300, "0,5000", 1
    ref_records = args.ref_records or args.records

    def scenario_args(records: str) -> list[str]:
        return [
            f"--cycles={args.cycles}",
            f"--appends={args.appends}",
            f"--records={records}",
            f"--repeats={args.repeats}",
        ]

    isolate = can_isolate_network()
    ours = run_scenario(
        SCENARIO,
        scenario_args(args.records),
        python=sys.executable,
        isolate=isolate,
        timeout=SCENARIO_TIMEOUT,
    )
    ref: dict[str, object] = {}
    if not args.no_reference:
        if not isolate:
            print("cannot create a network namespace: not running the reference (it scans the LAN)")
        else:
            ref = run_scenario(
                SCENARIO, scenario_args(ref_records), python=ensure_reference(), timeout=SCENARIO_TIMEOUT
            )

    counts = [int(c) for c in args.records.split(",") if c.strip()]
    print(f"{'measure':44} {'unit':>6} {'ours':>10} {'2.0.0':>10} {'speedup':>8} {'target':>7}  met")
    for key, label, unit, lower_better, target in FIXED_MEASURES + start_measures(counts):
        mine = float(ours[key])  # type: ignore[arg-type]
        theirs = float(ref[key]) if key in ref else None  # type: ignore[arg-type]
        speedup = ""
        if theirs:
            ratio = theirs / mine if lower_better else mine / theirs
            speedup = f"{ratio:.1f}x" if ratio >= 0.1 else f"{ratio:.3f}x"
        met = ""
        if target is not None:
            met = "yes" if (mine <= target if lower_better else mine >= target) else "NO"
        shown_target = "" if target is None else f"{target:g}"
        print(
            f"{label:44} {unit:>6} {_fmt(mine):>10} {'' if theirs is None else _fmt(theirs):>10} "
            f"{speedup:>8} {shown_target:>7}  {met}"
        )
    ref_counts = ref.get("records", [])
    for count in ref_counts if isinstance(ref_counts, list) else []:
        if count not in counts:
            seconds = float(ref[f"start_{count}_s"])  # type: ignore[arg-type]
            print(f"reference only: host start with {count:,} inactive records: {_fmt(seconds)} s")
    if args.json:
        args.json.write_text(json.dumps({"ours": ours, "reference": ref}, indent=2))
    return 0


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
