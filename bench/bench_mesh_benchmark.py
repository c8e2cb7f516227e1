"""The mesh benchmark example: how long does a paglet take to move, ours against paglets 2.0.0?

Question: on 3 and 5 hosts on loopback, with the description's command (``paglets-mesh-benchmark
--payload-size 64K``: a traveller carrying 64 KiB of extra state visits every directed pair of hosts,
self-moves included), what is the mean hop time, the time of the whole benchmark, and how long does the
command take from start to exit? Ours against paglets 2.0.0's own ``mesh_benchmark`` example (the
command of its PyPI release, which still waits and prints the report).

Each variant runs in its own process that starts the hosts (whole ``Host`` objects, one process; their
paglets run in their own processes on both sides) and then runs the command as a subprocess against the
first host. The reference runs under ``unshare -n`` with only loopback up, its hosts with
``mesh_lan_discovery=False, mesh_multicast=False`` and the first on port 8765 (where its command looks).
Both sides report hop times the same way: from just before the traveller dispatches itself to the start
of its ``run()`` on the target, on the entry host's clock.

    .venv/bin/python bench/bench_mesh_benchmark.py            # 3 and 5 hosts (about a minute)
    .venv/bin/python bench/bench_mesh_benchmark.py --sizes 3 --runs 3
    .venv/bin/python bench/bench_mesh_benchmark.py --json
    .venv/bin/python bench/bench_mesh_benchmark.py --reference /path/to/2.0/venv/bin/python

Internal: ``--scenario ours|reference --hosts N --payload SIZE --runs R`` runs one variant and prints one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
#: Seconds the mesh may take to list every host online.
JOIN_TIMEOUT = 60.0
#: Seconds one benchmark command may take.
COMMAND_TIMEOUT = 600.0


def _wait(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _command(argv: list[str]) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{argv[2:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def scenario_ours(count: int, payload: str, runs: int) -> dict[str, Any]:
    from paglets.runtime.host import Host

    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        hosts: list[Any] = []
        for i in range(count):
            host = Host(
                f"h{i}",
                peers=[hosts[0].address] if hosts else [],
                mesh_version="bench",
                mesh_lan_discovery=False,
                mesh_multicast=False,
                persistence_dir=Path(tmp) / f"h{i}",
            )
            host.start_background()
            hosts.append(host)
        _wait(lambda: all(len(h.available_hosts(online_only=True)) == count for h in hosts), "the mesh")
        argv = [sys.executable, "-m", "paglets.cli.meshbench", "--entry", hosts[0].address]
        for _ in range(runs):
            wall, data = _command([*argv, "--payload-size", payload, "--json", "--timeout", "300"])
            summary = data["summary"]
            samples.append(
                {
                    "command_s": wall,
                    "hop_ms": summary["average_seconds"] * 1000,
                    "benchmark_s": summary["total_seconds"],
                    "moves": summary["movement_count"],
                    "errors": data["errors"],
                }
            )
        for host in hosts:
            host.stop()
    return {"runs": samples}


def scenario_reference(count: int, payload: str, runs: int) -> dict[str, Any]:
    from paglets.runtime.host import Host  # the reference's own package (run with its python)

    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # not the checkout: there, ``python -m paglets...`` would import our package
        hosts: list[Any] = []
        for i in range(count):
            host = Host(
                f"h{i}",
                "127.0.0.1",
                8765 if i == 0 else 0,
                peers=[hosts[0].address] if hosts else [],
                mesh_lan_discovery=False,
                mesh_multicast=False,
                persistence_dir=Path(tmp) / f"h{i}",
            )
            host.start_background()
            hosts.append(host)
        _wait(lambda: all(len(h.list_hosts(online_only=True)) == count for h in hosts), "the mesh")
        argv = [sys.executable, "-m", "paglets.examples.mesh_benchmark.cli"]
        for _ in range(runs):
            wall, summary = _command([*argv, "--payload-size", payload, "--json", "--timeout", "300"])
            samples.append(
                {
                    "command_s": wall,
                    "hop_ms": float(summary["average_elapsed_seconds"]) * 1000,
                    "benchmark_s": float(summary["overall_benchmark_seconds"]),
                    "moves": int(summary["movement_count"]),
                    "errors": summary.get("errors") or {},
                }
            )
        for host in hosts:
            host.stop()
    return {"runs": samples}


# --- orchestration --------------------------------------------------------------------------------------


def _median(result: dict[str, Any] | None, key: str) -> float | None:
    if not result:
        return None
    return statistics.median(run[key] for run in result["runs"])


def run_all(
    sizes: list[int], payload: str, runs: int, with_reference: bool, reference: str | None = None
) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    from _reference import can_isolate_network, run_scenario

    here = Path(__file__).resolve()
    results: dict[str, Any] = {"sizes": {}, "payload": payload, "runs": runs}
    reference_ok = with_reference and can_isolate_network()
    for count in sizes:
        args = ["--hosts", str(count), "--payload", payload, "--runs", str(runs)]
        entry: dict[str, Any] = {}
        entry["ours"] = run_scenario(
            here, ["--scenario", "ours", *args], python=sys.executable, isolate=False
        )
        if reference_ok:
            entry["reference"] = run_scenario(
                here, ["--scenario", "reference", *args], python=reference, timeout=1200
            )
        results["sizes"][str(count)] = entry
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    if with_reference and not reference_ok:
        results["reference_skipped"] = "cannot create a network namespace (unshare -n)"
    return results


def _cell(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def _ratio(ours: float | None, ref: float | None) -> str:
    return "-" if not ours or not ref else f"{ref / ours:.1f}x"


def print_table(results: dict[str, Any]) -> None:
    print(
        f"mesh benchmark: --payload-size {results['payload']}, every directed pair and self-moves, "
        f"median of {results['runs']} run(s) (reference: LAN scan and multicast off)"
    )
    head = (
        f"{'hosts':>5} {'moves':>5} | {'hop ours':>9} {'2.0':>9} {'ratio':>6} | "
        f"{'benchmark ours':>14} {'2.0':>8} {'ratio':>6} | {'command ours':>12} {'2.0':>8} {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for count, entry in results["sizes"].items():
        ours, ref = entry["ours"], entry.get("reference")
        moves = int(_median(ours, "moves") or 0)
        columns = []
        for key, unit in (("hop_ms", "ms"), ("benchmark_s", "s"), ("command_s", "s")):
            a, b = _median(ours, key), _median(ref, key)
            columns.append((a, b, unit))
        (h1, h2, _), (b1, b2, _), (c1, c2, _) = columns
        print(
            f"{count:>5} {moves:>5} | {_cell(h1, 'ms'):>9} {_cell(h2, 'ms'):>9} {_ratio(h1, h2):>6} | "
            f"{_cell(b1, 's'):>14} {_cell(b2, 's'):>8} {_ratio(b1, b2):>6} | "
            f"{_cell(c1, 's'):>12} {_cell(c2, 's'):>8} {_ratio(c1, c2):>6}"
        )
        for name, result in (("ours", ours), ("2.0", ref)):
            errors = [run["errors"] for run in (result or {}).get("runs", []) if run["errors"]]
            if errors:
                print(f"      {name} errors: {errors}")
    if "reference_skipped" in results:
        print(f"reference skipped: {results['reference_skipped']}")
    print(
        "hop = mean move time; benchmark = the whole run as the example reports it; command = start to exit"
    )
    print("ratio = 2.0 / ours (above 1: we are faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["ours", "reference"])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--payload", default="64K")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sizes", default="3,5")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--reference", default=None, help="python of a paglets 2.0.0 install (default: bench/.ref)"
    )
    options = parser.parse_args()
    if options.scenario == "ours":
        print(json.dumps(scenario_ours(options.hosts, options.payload, options.runs)))
        return
    if options.scenario == "reference":
        print(json.dumps(scenario_reference(options.hosts, options.payload, options.runs)))
        return
    sizes = [int(part) for part in options.sizes.split(",") if part.strip()]
    results = run_all(
        sizes, options.payload, max(1, options.runs), not options.no_reference, options.reference
    )
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
