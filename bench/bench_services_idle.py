"""The background cost of the default resident services on idle hosts, ours against paglets 2.0.0.

Question: with the launch config each version bundles (ours: server-info, mesh-info, user-info; 2.0:
server-info, mesh-info, compute-slots, user-info), how much CPU does an idle host burn, and how many
HTTP requests per second does it serve, compared with the same host without any resident service?

Each variant runs in its own process: N hosts (default 3) on loopback, chain-seeded, default mesh
settings, all in that process (their paglet processes are its descendants). After convergence and a
settling period (eager services start, lazy ones are touched by whatever the defaults do), a window of
``--window`` seconds is measured:

- CPU: user + system time of the bench process and of every descendant process (host, zygote, service
  paglets), per host, as a percentage of one core;
- requests/s: HTTP requests the hosts served (ours: ``server_statistics()``; 2.0: its request handler,
  wrapped to count), per host;
- paglet processes: the resident services' processes per host at the end.

The reference runs under ``unshare -n`` (loopback only) with ``mesh_lan_discovery=False,
mesh_multicast=False``, as the harness requires.

    .venv/bin/python bench/bench_services_idle.py            # 3 hosts, 20 s window (~2.5 min)
    .venv/bin/python bench/bench_services_idle.py --quick    # 8 s window
    .venv/bin/python bench/bench_services_idle.py --json

Internal: ``--scenario ours|reference --services default|none --hosts N --window S``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
#: Longest a convergence may take.
CONVERGE_TIMEOUT = 120.0
#: Seconds between convergence and the window: eager services start and settle into their rhythm.
SETTLE = 12.0


def _cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of this process and each live descendant, by pid."""
    import psutil

    me = psutil.Process()
    found: dict[int, float] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        found[process.pid] = times.user + times.system
    return found


def _paglet_processes() -> int:
    """Processes below this one that are not hosts' helpers (zygotes and spares are counted apart)."""
    import psutil

    count = 0
    for process in psutil.Process().children(recursive=True):
        try:
            title = " ".join(process.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" in title:
            continue
        if title.startswith("paglet:") or "multiprocessing" in title:
            count += 1
    return count


def _measure(hosts: list[Any], served: Any, window: float) -> dict[str, float]:
    cpu0, served0, wall0 = _cpu_seconds(), served(), time.perf_counter()
    time.sleep(window)
    cpu1, served1, wall = _cpu_seconds(), served(), time.perf_counter() - wall0
    spent = sum(value - cpu0.get(pid, 0.0) for pid, value in cpu1.items())
    count = len(hosts)
    return {
        "cpu_percent_per_host": spent / wall / count * 100.0,
        "requests_per_host_s": (served1 - served0) / wall / count,
        "processes_per_host": _paglet_processes() / count,
    }


def scenario_ours(count: int, window: float, services: bool) -> dict[str, Any]:
    from paglets.config.startup import bundled_launch_config_text, parse_launch_config
    from paglets.runtime.host import Host

    config = parse_launch_config(bundled_launch_config_text()) if services else None
    with tempfile.TemporaryDirectory() as tmp:
        hosts: list[Any] = []
        for i in range(count):
            host = Host(
                f"h{i}",
                "127.0.0.1",
                0,
                peers=[hosts[-1].address] if hosts else [],
                mesh_version="bench",
                persistence_dir=Path(tmp) / f"h{i}",
                launch_config=config,
            )
            host.start_background()
            hosts.append(host)
        deadline = time.perf_counter() + CONVERGE_TIMEOUT
        while not all(len(h.available_hosts(online_only=True)) == count for h in hosts):
            if time.perf_counter() > deadline:
                raise SystemExit("no convergence")
            time.sleep(0.01)
        time.sleep(SETTLE)
        result = _measure(hosts, lambda: sum(h.server_statistics().requests_served for h in hosts), window)
        for host in hosts:
            host.stop()
    return result


def scenario_reference(count: int, window: float, services: bool) -> dict[str, Any]:
    # the reference's own package (this function runs with its interpreter)
    from paglets.config.startup import bundled_launch_config_text, load_launch_config
    from paglets.runtime import http_api
    from paglets.runtime.host import Host

    lock = threading.Lock()
    counter = [0]
    inner = http_api.RequestHandler._handle

    def counting(self: Any, method: str) -> None:
        with lock:
            counter[0] += 1
        inner(self, method)

    http_api.RequestHandler._handle = counting
    with tempfile.TemporaryDirectory() as tmp:
        config = None
        if services:
            path = Path(tmp) / "launch.toml"
            path.write_text(bundled_launch_config_text())
            config = load_launch_config(path)
        hosts: list[Any] = []
        for i in range(count):
            host = Host(
                f"h{i}",
                "127.0.0.1",
                0,
                peers=[hosts[-1].address] if hosts else [],
                mesh_version="bench",
                mesh_lan_discovery=False,
                mesh_multicast=False,
                persistence_dir=Path(tmp) / f"h{i}",
                launch_config=config,
            )
            host.start_background()
            hosts.append(host)
        deadline = time.perf_counter() + CONVERGE_TIMEOUT
        while not all(len(h.list_hosts(online_only=True)) == count for h in hosts):
            if time.perf_counter() > deadline:
                raise SystemExit("no convergence")
            time.sleep(0.01)
        time.sleep(SETTLE)
        result = _measure(hosts, lambda: counter[0], window)
        for host in hosts:
            host.stop()
    return result


# --- orchestration --------------------------------------------------------------------------------------


def run_all(count: int, window: float, with_reference: bool) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    from _reference import can_isolate_network, run_scenario

    here = Path(__file__).resolve()
    reference_ok = with_reference and can_isolate_network()
    results: dict[str, Any] = {"hosts": count, "window_s": window, "settle_s": SETTLE, "variants": {}}
    for services in ("none", "default"):
        args = ["--hosts", str(count), "--window", str(window), "--services", services]
        entry = {
            "ours": run_scenario(here, ["--scenario", "ours", *args], python=sys.executable, isolate=False)
        }
        if reference_ok:
            entry["reference"] = run_scenario(here, ["--scenario", "reference", *args], timeout=900)
        results["variants"][services] = entry
    if with_reference and not reference_ok:
        results["reference_skipped"] = "cannot create a network namespace (unshare -n)"
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    return results


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(ours: float | None, ref: float | None) -> str:
    if ours is None or ref is None or ours <= 0:
        return "-"
    return f"{ref / ours:.1f}x"


def print_table(results: dict[str, Any]) -> None:
    print(
        f"idle hosts with the bundled launch config: {results['hosts']} hosts on loopback, "
        f"{results['window_s']:g} s window after {results['settle_s']:g} s settling "
        "(reference: LAN scan and multicast off)"
    )
    print(f"{'measure (per host)':<52} | {'ours':>8} | {'2.0.0':>8} | {'2.0 / ours':>10}")
    print("-" * 88)
    variants = results["variants"]
    for key, label, digits in (
        ("cpu_percent_per_host", "CPU % of one core", 2),
        ("requests_per_host_s", "HTTP requests served per second", 2),
        ("processes_per_host", "resident service processes", 1),
    ):
        for services in ("default", "none"):
            ours = variants[services]["ours"].get(key)
            ref = variants[services].get("reference", {}).get(key)
            name = f"{label}, {'default services' if services == 'default' else 'no services'}"
            print(f"{name:<52} | {_fmt(ours, digits):>8} | {_fmt(ref, digits):>8} | {_ratio(ours, ref):>10}")
    for services_key in ("cpu_percent_per_host", "requests_per_host_s"):
        ours = variants["default"]["ours"][services_key] - variants["none"]["ours"][services_key]
        ref_default = variants["default"].get("reference", {}).get(services_key)
        ref_none = variants["none"].get("reference", {}).get(services_key)
        ref = None if ref_default is None or ref_none is None else ref_default - ref_none
        label = "services' share: " + ("CPU %" if services_key.startswith("cpu") else "requests/s")
        print(f"{label:<52} | {_fmt(ours):>8} | {_fmt(ref):>8} | {_ratio(ours, ref):>10}")
    if "reference_skipped" in results:
        print(f"(reference skipped: {results['reference_skipped']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", choices=("ours", "reference"))
    parser.add_argument("--services", choices=("default", "none"), default="default")
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="8 s window")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.scenario:
        run = scenario_ours if args.scenario == "ours" else scenario_reference
        print(json.dumps(run(args.hosts, args.window, args.services == "default")))
        return
    window = 8.0 if args.quick else args.window
    results = run_all(args.hosts, window, not args.no_reference)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
