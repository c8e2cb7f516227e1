"""How long does ``--help`` of every command take, as a user types it? Target: under 0.3 s (median of 5).

Each command line runs as a fresh subprocess (the installed console scripts next to this interpreter),
five times; the table shows the median and the worst run, and whether the median meets the target.
For comparison, the same is measured for paglets 2.0.0's ``paglets`` (Typer) when the reference venv
is installed (``bench/.ref``); 2.0 has no ``paglets-sysinfo`` scripts any more, so only its tree is
timed.

    .venv/bin/python bench/bench_cli_help.py
    .venv/bin/python bench/bench_cli_help.py --json

Exit code 1 when a median misses the target (so CI can run it as a check on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET = 0.3
RUNS = 5
BENCH_DIR = Path(__file__).resolve().parent

COMMANDS: list[list[str]] = [
    ["paglets", "--help"],
    ["paglets", "--version"],
    ["paglets", "host", "--help"],
    ["paglets", "sys", "--help"],
    ["paglets", "sys", "summary", "--help"],
    ["paglets", "sys", "load", "--help"],
    ["paglets", "sys", "df", "--help"],
    ["paglets", "sys", "ps", "--help"],
    ["paglets", "mesh", "summary", "--help"],
    ["paglets", "mesh", "targets", "--help"],
    ["paglets", "artifacts", "list", "--help"],
    ["paglets", "artifacts", "info", "--help"],
    ["paglets", "artifacts", "get", "--help"],
    ["paglets", "artifacts", "rm", "--help"],
    ["paglets", "hosts", "--help"],
    ["paglets", "agents", "--help"],
    ["paglets", "agents", "list", "--help"],
    ["paglets", "agents", "send", "--help"],
    ["paglets", "agents", "dispatch", "--help"],
    ["paglets", "user-info", "--help"],
    ["paglets", "completion", "--help"],
    ["paglets-host", "--help"],
    ["paglets-sysinfo", "--help"],
    ["paglets-sysinfo", "df", "--help"],
    ["paglets-mesh-info", "--help"],
    ["paglets-mesh-info", "targets", "--help"],
    ["paglets-artifacts", "--help"],
    ["paglets-artifacts", "list", "--help"],
]

REFERENCE: list[list[str]] = [
    ["paglets", "--help"],
    ["paglets", "sys", "df", "--help"],
    ["paglets", "mesh", "targets", "--help"],
    ["paglets", "artifacts", "list", "--help"],
]


def time_command(bin_dir: Path, argv: list[str]) -> list[float]:
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]], capture_output=True, timeout=60, check=False
        )
        runs.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-400:]}")
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description="--help timings of every command")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    results: dict[str, Any] = {"target_s": TARGET, "runs": RUNS, "ours": {}, "reference": {}}
    for argv in COMMANDS:
        results["ours"][" ".join(argv)] = time_command(bin_dir, argv)
    ref_bin = BENCH_DIR / ".ref" / "venv" / "bin"
    if not args.no_reference and (ref_bin / "paglets").exists():
        for argv in REFERENCE:
            results["reference"][" ".join(argv)] = time_command(ref_bin, argv)
    slow = [name for name, runs in results["ours"].items() if statistics.median(runs) >= TARGET]
    results["slow"] = slow
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"--help as a fresh process, median and worst of {RUNS} runs (target: median < {TARGET} s)")
        print(f"{'command':<42} | {'median':>7} | {'worst':>7} | {'2.0 median':>10} | ok")
        print("-" * 80)
        for name, runs in results["ours"].items():
            ref = results["reference"].get(name)
            ref_text = f"{statistics.median(ref):.3f}" if ref else "-"
            ok = "yes" if statistics.median(runs) < TARGET else "NO"
            print(f"{name:<42} | {statistics.median(runs):7.3f} | {max(runs):7.3f} | {ref_text:>10} | {ok}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
