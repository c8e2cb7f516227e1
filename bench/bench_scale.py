"""Scale: meshes of 10, 25 and 50 host processes, an empty host's start, 1,000 paglets on one host.

Rows, ours and paglets 2.0.0 side by side in one run where 2.0 can run:

- **mesh N** (default 10, 25, 50): N host processes on this machine inside a network namespace of their
  own (``unshare -n``, loopback only), started one after the other as a star (host i's only ``--peer``
  is host 0), ours as the ``paglets-host`` command with the default launch config (so with the
  resident services it bundles), 2.0 as its ``Host`` with its bundled launch config and LAN discovery
  and multicast off. Measured: *convergence*, seconds from the last process start until every host's
  ``GET /hosts`` lists all N online; *idle CPU* over ``--window`` seconds after ``--settle`` seconds of
  quiet, of every process of the mesh (hosts, template processes, services), in % of one core, in total
  and per host (``idle_cpu_pct_host_processes``: the host processes alone, without their services);
  *requests/s per host* served by the hosts in that window; *kill detection*, seconds
  from SIGKILL of one host until every other host lists it offline. The bench polls ``GET /hosts`` to
  watch convergence and the kill (every ``POLL`` seconds; never during the CPU window). Convergence is
  also given from the moment the last host first answered (``converge_after_serving_s``): on a small
  machine starting 50 interpreters dominates the time from the last launch.
- **start**: an empty host's constructor → serving (``Host(...)`` then ``start_background()``, no launch
  config), median of ``--runs`` runs, each in a fresh process, after the module imports, with the
  modules' bytecode written beforehand (as a wheel install does; 2.0's venv has it).
- **1,000 paglets** (ours only: 2.0 runs each paglet in a process of its own too, ~18 MiB each): create
  ``--paglets`` paglets on one host, the memory of the host and all its processes (PSS), then a message
  to each one (``send`` from 32 threads, so that the host's dispatching is measured, not one caller).

    .venv/bin/python bench/bench_scale.py                      # everything (~15 min)
    .venv/bin/python bench/bench_scale.py --rows mesh --sizes 10 25
    .venv/bin/python bench/bench_scale.py --rows start paglets --runs 7
    .venv/bin/python bench/bench_scale.py --baseline /path/to/older/checkout   # adds an "ours (base)" column
    .venv/bin/python bench/bench_scale.py --rows mesh --host-args "--mesh-gossip-interval 2"
    .venv/bin/python bench/bench_scale.py --json

Internal: ``--scenario mesh|start|paglets`` runs one measurement and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
BASE_PORT = 21000
POLL = 0.5
CONVERGE_TIMEOUT = 240.0
KILL_TIMEOUT = 120.0
HTTP_TIMEOUT = 5.0


# --- helpers (run inside the namespace) ---------------------------------------------------------------


def _online(port: int) -> set[str] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hosts", timeout=HTTP_TIMEOUT) as reply:
            body = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    return {str(h.get("name")) for h in body.get("hosts", []) if h.get("online")}


def _poll_all(ports: list[int]) -> list[set[str] | None]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(_online, ports))


def _cpu_seconds(pids: list[int], *, children: bool = True) -> float:
    import psutil

    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            continue
        family = [root, *_family(pid)] if children else [root]
        for process in family:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def _served(stats: list[Path], procs: list[subprocess.Popen[bytes]]) -> int:
    for path in stats:
        path.unlink(missing_ok=True)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    total = 0
    for path, proc in zip(stats, procs, strict=True):
        if proc.poll() is not None:
            continue
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if path.exists():
            total += int(json.loads(path.read_text())["served"])
    return total


# --- scenarios ------------------------------------------------------------------------------------------


def scenario_mesh(impl: str, count: int, python: str, window: float, settle: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="paglets-scale-"))
    env = dict(os.environ, HOME=str(tmp / "home"), PAGLETS_MESH_VERSION="bench", NO_COLOR="1")
    ports = [BASE_PORT + i for i in range(count)]
    names = {f"h{i}" for i in range(count)}
    stats = [tmp / f"stats-{i}.json" for i in range(count)]
    procs: list[subprocess.Popen[bytes]] = []
    strays: list[Any] = []
    result: dict[str, Any] = {"hosts": count}
    try:
        start = time.perf_counter()
        for i, port in enumerate(ports):
            argv = [python, str(BENCH_DIR / "_scale_host.py"), impl, f"h{i}", str(port)]
            argv += [str(tmp / f"h{i}"), str(stats[i])]
            if i:
                argv.append(f"http://127.0.0.1:{ports[0]}")
            procs.append(
                subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
            )
        last_start = time.perf_counter()
        result["start_all_s"] = last_start - start
        serving: dict[int, float] = {}
        while True:
            views = _poll_all(ports)
            now = time.perf_counter()
            for i, v in enumerate(views):
                if v is not None:
                    serving.setdefault(i, now)
            if all(v == names for v in views):
                break
            dead = [i for i, proc in enumerate(procs) if proc.poll() is not None]
            if dead or time.perf_counter() - last_start > CONVERGE_TIMEOUT:
                result["exited"] = len(dead)
                result["converge_s"] = None
                result["converged_hosts"] = sum(1 for v in views if v == names)
                return result
            time.sleep(POLL)
        result["converge_s"] = time.perf_counter() - last_start
        result["all_serving_s"] = max(serving.values()) - last_start
        result["converge_after_serving_s"] = time.perf_counter() - max(serving.values())
        time.sleep(settle)
        pids = [p.pid for p in procs]
        served0 = _served(stats, procs)
        cpu0, wall0 = _cpu_seconds(pids), time.perf_counter()
        hosts0 = _cpu_seconds(pids, children=False)
        time.sleep(window)
        cpu, wall = _cpu_seconds(pids) - cpu0, time.perf_counter() - wall0
        result["idle_cpu_pct_host_processes"] = 100 * (_cpu_seconds(pids, children=False) - hosts0) / wall
        served = _served(stats, procs) - served0
        result["idle_cpu_pct_total"] = 100 * cpu / wall
        result["idle_cpu_pct_per_host"] = 100 * cpu / wall / count
        result["requests_per_host_s"] = served / wall / count
        result["still_converged"] = all(v == names for v in _poll_all(ports))
        victim = count // 2
        strays += _family(procs[victim].pid)  # 2.0's paglet processes outlive their host
        procs[victim].kill()
        killed = time.perf_counter()
        others = [p for i, p in enumerate(ports) if i != victim]
        while True:
            views = _poll_all(others)
            if all(v is not None and f"h{victim}" not in v for v in views):
                result["kill_detect_s"] = time.perf_counter() - killed
                break
            if time.perf_counter() - killed > KILL_TIMEOUT:
                result["kill_detect_s"] = None
                break
            time.sleep(POLL / 2)
        return result
    finally:
        _kill_mesh(procs, strays)


def _family(pid: int) -> list[Any]:
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _kill_mesh(procs: list[subprocess.Popen[bytes]], strays: list[Any]) -> None:
    """SIGKILL the host processes and everything they started: 2.0's paglet processes outlive a killed
    host, and left running they would load the machine during the next measurement."""
    import psutil

    family = list(strays)
    for proc in procs:
        family += _family(proc.pid)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    for process in family:
        try:
            process.kill()
        except psutil.Error:
            pass
    for proc in procs:
        proc.wait(30)
    psutil.wait_procs(family, timeout=30)


def scenario_start(impl: str) -> dict[str, Any]:
    imported = time.perf_counter()
    from paglets.runtime.host import Host

    imported = time.perf_counter() - imported
    options: dict[str, Any] = {"mesh_version": "bench"}
    if impl == "reference":
        options.update(mesh_lan_discovery=False, mesh_multicast=False)
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        host = Host("h0", "127.0.0.1", 0, persistence_dir=Path(tmp) / "h0", **options)
        host.start_background()
        serving = time.perf_counter() - begin
        address = host.address
        with urllib.request.urlopen(f"{address}/health", timeout=HTTP_TIMEOUT) as reply:
            reply.read()
        answered = time.perf_counter() - begin
        host.stop()
    return {
        "serving_ms": serving * 1000,
        "first_answer_ms": answered * 1000,
        "import_ms": imported * 1000,
        "import_to_serving_ms": (imported + serving) * 1000,
    }


def scenario_paglets(count: int) -> dict[str, Any]:
    import psutil

    from paglets.core.messages import Message
    from paglets.runtime.host import Host

    sys.path.insert(0, str(BENCH_DIR))
    from _scale_paglets import Echo

    with tempfile.TemporaryDirectory() as tmp:
        host = Host(
            "big",
            "127.0.0.1",
            0,
            persistence_dir=Path(tmp) / "big",
            mesh_version="bench",
            preload_modules=["_scale_paglets"],
        )
        host.start_background()
        try:
            begin = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                proxies = list(pool.map(lambda i: host.create(Echo), range(count)))
            created = time.perf_counter() - begin
            me = psutil.Process()
            pss = 0
            rss = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    info = process.memory_full_info()
                except psutil.Error:
                    continue
                pss += info.pss
                rss += info.rss
            begin = time.perf_counter()
            with ThreadPoolExecutor(32) as pool:
                replies = list(pool.map(lambda proxy: proxy.send(Message("ping")), proxies))
            sent = time.perf_counter() - begin
            assert all(r == "pong" for r in replies), replies[:3]
        finally:
            host.stop()
    return {
        "paglets": count,
        "create_s": created,
        "pss_gib": pss / 2**30,
        "rss_gib": rss / 2**30,
        "message_each_s": sent,
    }


# --- orchestration ---------------------------------------------------------------------------------------


def _run(argv: list[str], *, python: str, netns: bool, src: str | None, timeout: float) -> dict[str, Any]:
    inner = [python, str(Path(__file__).resolve()), *argv]
    if netns:
        inner = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if src:
        env["PYTHONPATH"] = src
    done = subprocess.run(inner, capture_output=True, text=True, timeout=timeout, env=env, cwd=BENCH_DIR)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        return {"error": f"exit {done.returncode}"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return dict(json.loads(lines[-1])) if lines else {"error": "no output"}


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    from _reference import can_isolate_network, compile_bytecode, ensure_reference

    ours = sys.executable
    if args.no_services:
        os.environ["PAGLETS_SCALE_NO_SERVICES"] = "1"
    if args.host_args:
        os.environ["PAGLETS_SCALE_HOST_ARGS"] = args.host_args
    impls: list[tuple[str, str, str, str | None]] = [("ours", "ours", ours, None)]
    if args.baseline:
        impls.append(("ours (base)", "ours", ours, str(Path(args.baseline).resolve())))
    if not args.no_reference and can_isolate_network():
        impls.append(("2.0.0", "reference", str(ensure_reference()), None))
    results: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "rows": {}}
    if "start" in args.rows:
        row: dict[str, Any] = {}
        for label, impl, python, src in impls:
            if impl == "ours":
                compile_bytecode(python, Path(src) if src else None)
            runs = [
                _run(["--scenario", "start", "--impl", impl], python=python, netns=impl == "reference",
                     src=src, timeout=120)
                for _ in range(args.runs)
            ]  # fmt: skip
            good = [r["serving_ms"] for r in runs if "serving_ms" in r]
            whole = [r["import_to_serving_ms"] for r in runs if "import_to_serving_ms" in r]
            row[label] = {
                "serving_ms_median": statistics.median(good) if good else None,
                "import_to_serving_ms_median": statistics.median(whole) if whole else None,
                "runs": good,
            }
        results["rows"]["start"] = row
    if "mesh" in args.rows:
        for size in args.sizes:
            row = {}
            for label, impl, python, src in impls:
                argv = ["--scenario", "mesh", "--impl", impl, "--hosts", str(size), "--python", python]
                argv += ["--window", str(args.window), "--settle", str(args.settle)]
                row[label] = _run(argv, python=ours, netns=True, src=src, timeout=900)
                _print_mesh(size, label, row[label])
            results["rows"][f"mesh {size}"] = row
    if "paglets" in args.rows:
        row = {}
        for label, impl, python, src in impls:
            if impl == "reference":
                row[label] = {"skipped": "a process per paglet of ~18 MiB: 1,000 do not fit this machine"}
                continue
            argv = ["--scenario", "paglets", "--count", str(args.paglets)]
            row[label] = _run(argv, python=python, netns=False, src=src, timeout=900)
        results["rows"]["paglets"] = row
    return results


def _print_mesh(size: int, label: str, r: dict[str, Any]) -> None:
    print(f"  mesh {size:>3} {label:<12} {json.dumps(r)}", file=sys.stderr, flush=True)


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_table(results: dict[str, Any]) -> None:
    print(f"machine: {results['machine']}, {results['cpus']} CPUs")
    rows = results["rows"]
    if "start" in rows:
        print("\nempty host: constructor -> serving, and import of the host module -> serving (median ms)")
        for label, r in rows["start"].items():
            whole = _fmt(r.get("import_to_serving_ms_median"), ".1f")
            print(f"  {label:<12} {_fmt(r['serving_ms_median'], '.1f'):>8}  {whole:>8}   runs {r['runs']}")
    mesh = [k for k in rows if k.startswith("mesh ")]
    if mesh:
        print("\nmesh of host processes (star seeding, default launch config)")
        head = f"  {'hosts':>5} {'impl':<12} {'converge s':>10} {'after serving':>13} {'cpu % total':>11}"
        print(head + f" {'cpu %/host':>10} {'req/s/host':>10} {'kill -> offline s':>17}")
        for key in mesh:
            for label, r in rows[key].items():
                print(
                    f"  {key[5:]:>5} {label:<12} {_fmt(r.get('converge_s'), '.1f'):>10}"
                    f" {_fmt(r.get('converge_after_serving_s'), '.1f'):>13}"
                    f" {_fmt(r.get('idle_cpu_pct_total'), '.1f'):>11}"
                    f" {_fmt(r.get('idle_cpu_pct_per_host'), '.2f'):>10}"
                    f" {_fmt(r.get('requests_per_host_s'), '.1f'):>10}"
                    f" {_fmt(r.get('kill_detect_s'), '.1f'):>17}"
                    + (f"   {r['error']}" if "error" in r else "")
                )
    if "paglets" in rows:
        print("\nactive paglets on one host")
        for label, r in rows["paglets"].items():
            if "create_s" not in r:
                print(f"  {label:<12} {r}")
                continue
            print(
                f"  {label:<12} {r['paglets']} created in {r['create_s']:.2f} s, PSS {r['pss_gib']:.2f} GiB"
                f" (RSS {r['rss_gib']:.2f}), a message to each in {r['message_each_s']:.2f} s"
            )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--rows", nargs="+", default=["start", "mesh", "paglets"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 25, 50])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--paglets", type=int, default=1000)
    parser.add_argument("--baseline", help="source tree of another paglets to run as 'ours (base)'")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument(
        "--no-services", action="store_true", help="ours without a launch config (the mesh alone)"
    )
    parser.add_argument(
        "--host-args", default="", help="more paglets-host options for ours, e.g. '--mesh-gossip-interval 2'"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scenario", choices=["mesh", "start", "paglets"])
    parser.add_argument("--impl", default="ours")
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    if args.scenario == "mesh":
        print(json.dumps(scenario_mesh(args.impl, args.hosts, args.python, args.window, args.settle)))
        return
    if args.scenario == "start":
        print(json.dumps(scenario_start(args.impl)))
        return
    if args.scenario == "paglets":
        print(json.dumps(scenario_paglets(args.count)))
        return
    results = run_all(args)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
