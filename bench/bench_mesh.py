"""Mesh membership: how fast does a mesh converge, and what does it cost when nothing happens?

Convergence is timed from the first host's start, so it includes starting every host (one after the
other); the "started" columns say how much of it that was.

Question: for 2, 5 and 10 hosts on loopback, started as a chain (host i's only seed is host i-1), how
long until every host lists every other host as online; and once converged, how many background requests
per second does each host send, and how much CPU does the mesh burn? Ours against paglets 2.0.0.

Both sides use the default gossip interval (1 s) and offline threshold (10 s) and run whole ``Host``
objects, all hosts of a variant in one process (so the CPU column is the hosts' own work, paglet
processes aside: there are none). Ours counts the mesh's own requests (``host.mesh.statistics()``). The
reference runs with ``mesh_lan_discovery=False, mesh_multicast=False`` (as the harness requires) under
``unshare -n`` with only loopback up; its requests are counted by wrapping each host's
``HostClient._request`` (every gossip request goes through it). Each variant runs in its own process.

    .venv/bin/python bench/bench_mesh.py              # 2, 5, 10 hosts, 10 s steady state (~2 min)
    .venv/bin/python bench/bench_mesh.py --quick      # 2 and 5 hosts, 3 s steady state
    .venv/bin/python bench/bench_mesh.py --json       # one JSON document

Internal: ``--scenario ours|reference --hosts N --steady S`` runs one variant and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
INTERVAL = 1.0
OFFLINE_AFTER = 10.0
#: Longest a convergence may take before the run is reported as failed.
CONVERGE_TIMEOUT = 120.0
#: Seconds the converged mesh settles before the steady-state window (news rounds die down).
SETTLE = 2.0


# --- scenarios (run in their own process) ----------------------------------------------------------------


def scenario_ours(count: int, steady: float) -> dict[str, Any]:
    from paglets.runtime.host import Host

    with tempfile.TemporaryDirectory() as tmp:
        hosts: list[Any] = []
        start = time.perf_counter()
        for i in range(count):
            host = Host(
                f"h{i}",
                "127.0.0.1",
                0,
                peers=[hosts[-1].address] if hosts else [],
                mesh_version="bench",
                mesh_gossip_interval=INTERVAL,
                mesh_offline_after=OFFLINE_AFTER,
                persistence_dir=Path(tmp) / f"h{i}",
            )
            host.start_background()
            hosts.append(host)
        started = time.perf_counter() - start

        def converged() -> bool:
            return all(len(h.available_hosts(online_only=True)) == count for h in hosts)

        while not converged():
            if time.perf_counter() - start > CONVERGE_TIMEOUT:
                raise SystemExit("no convergence")
            time.sleep(0.002)
        converge = time.perf_counter() - start
        time.sleep(SETTLE)
        sent0 = sum(h.mesh.statistics().requests_sent for h in hosts)
        served0 = sum(h.server_statistics().requests_served for h in hosts)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(steady)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sent = sum(h.mesh.statistics().requests_sent for h in hosts) - sent0
        served = sum(h.server_statistics().requests_served for h in hosts) - served0
        still = converged()
        for host in hosts:
            host.stop()
    return {
        "converge_s": converge,
        "started_s": started,
        "requests_per_host_s": sent / count / wall,
        "served_per_host_s": served / count / wall,
        "cpu_ms_per_host_s": cpu * 1000 / count / wall,
        "converged_after": still,
    }


def scenario_reference(count: int, steady: float) -> dict[str, Any]:
    from paglets.runtime.host import Host  # the reference's own package (run with its python)

    counters: list[int] = []

    def counting(client: Any, index: int) -> None:
        inner = client._request

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            counters[index] += 1
            return inner(*args, **kwargs)

        client._request = wrapped

    with tempfile.TemporaryDirectory() as tmp:
        hosts: list[Any] = []
        start = time.perf_counter()
        for i in range(count):
            host = Host(
                f"h{i}",
                "127.0.0.1",
                0,
                peers=[hosts[-1].address] if hosts else [],
                mesh_lan_discovery=False,
                mesh_multicast=False,
                mesh_gossip_interval=INTERVAL,
                mesh_offline_after=OFFLINE_AFTER,
                persistence_dir=Path(tmp) / f"h{i}",
            )
            counters.append(0)
            counting(host.client, i)
            host.start_background()
            hosts.append(host)
        started = time.perf_counter() - start

        def converged() -> bool:
            return all(len(h.list_hosts(online_only=True)) == count for h in hosts)

        while not converged():
            if time.perf_counter() - start > CONVERGE_TIMEOUT:
                raise SystemExit("no convergence")
            time.sleep(0.002)
        converge = time.perf_counter() - start
        time.sleep(SETTLE)
        sent0 = sum(counters)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(steady)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sent = sum(counters) - sent0
        still = converged()
        for host in hosts:
            host.stop()
    return {
        "converge_s": converge,
        "started_s": started,
        "requests_per_host_s": sent / count / wall,
        "served_per_host_s": None,
        "cpu_ms_per_host_s": cpu * 1000 / count / wall,
        "converged_after": still,
    }


# --- orchestration --------------------------------------------------------------------------------------


def _ratio(ours: float | None, ref: float | None) -> str:
    if not ours or not ref:
        return "-"
    return f"{ref / ours:.1f}x"


def run_all(sizes: list[int], steady: float, with_reference: bool) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    from _reference import can_isolate_network, run_scenario

    here = Path(__file__).resolve()
    results: dict[str, Any] = {"sizes": {}, "steady_s": steady, "interval_s": INTERVAL}
    reference_ok = with_reference and can_isolate_network()
    for count in sizes:
        args = ["--hosts", str(count), "--steady", str(steady)]
        entry: dict[str, Any] = {}
        ours = ["--scenario", "ours", *args]
        entry["ours"] = run_scenario(here, ours, python=sys.executable, isolate=False)
        if reference_ok:
            entry["reference"] = run_scenario(here, ["--scenario", "reference", *args], timeout=600)
        results["sizes"][str(count)] = entry
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    if with_reference and not reference_ok:
        results["reference_skipped"] = "cannot create a network namespace (unshare -n)"
    return results


def print_table(results: dict[str, Any]) -> None:
    print(
        f"mesh: chain-seeded hosts on loopback, gossip interval {results['interval_s']:g} s, "
        f"steady state over {results['steady_s']:g} s (reference: LAN scan and multicast off)"
    )
    head = (
        f"{'hosts':>5} | {'started ours':>12} {'ref':>8} | {'converge ours':>13} {'ref':>9} {'ratio':>7} | "
        f"{'req/s/host ours':>15} {'ref':>6} {'ratio':>7} | "
        f"{'CPU ms/s/host ours':>18} {'ref':>6} {'ratio':>7}"
    )
    print(head)
    print("-" * len(head))
    for count, entry in results["sizes"].items():
        ours, ref = entry["ours"], entry.get("reference", {})
        ref_conv = f"{ref['converge_s'] * 1000:7.0f}ms" if ref else "-"
        ref_req = f"{ref['requests_per_host_s']:6.2f}" if ref else "-"
        ref_cpu = f"{ref['cpu_ms_per_host_s']:6.2f}" if ref else "-"
        ref_started = f"{ref['started_s'] * 1000:6.0f}ms" if ref else "-"
        print(
            f"{count:>5} | {ours['started_s'] * 1000:10.1f}ms {ref_started:>8} | "
            f"{ours['converge_s'] * 1000:11.1f}ms {ref_conv:>9} "
            f"{_ratio(ours['converge_s'], ref.get('converge_s')):>7} | "
            f"{ours['requests_per_host_s']:15.2f} {ref_req:>6} "
            f"{_ratio(ours['requests_per_host_s'], ref.get('requests_per_host_s')):>7} | "
            f"{ours['cpu_ms_per_host_s']:18.2f} {ref_cpu:>6} "
            f"{_ratio(ours['cpu_ms_per_host_s'], ref.get('cpu_ms_per_host_s')):>7}"
        )
    if "reference_skipped" in results:
        print(f"reference skipped: {results['reference_skipped']}")
    print("ratio = reference / ours (above 1: we are faster or cheaper)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["ours", "reference"])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--steady", type=float, default=10.0)
    parser.add_argument("--sizes", default="2,5,10")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    options = parser.parse_args()
    if options.scenario == "ours":
        print(json.dumps(scenario_ours(options.hosts, options.steady)))
        return
    if options.scenario == "reference":
        print(json.dumps(scenario_reference(options.hosts, options.steady)))
        return
    sizes = [int(part) for part in options.sizes.split(",") if part.strip()]
    steady = options.steady
    if options.quick:
        sizes, steady = [2, 5], 3.0
    results = run_all(sizes, steady, not options.no_reference)
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
