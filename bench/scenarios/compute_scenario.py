"""One run of the compute-slots scenario (uses only names both runtimes have, apart from the import).

``--impl ours|ref``: N hosts on loopback in this process with the bundled launch config (the
reference's load gate raised so that a loaded machine does not hold every grant), JOBS compute jobs of
SECONDS seconds created on the first host; prints the time from the first submit until every job has
finished, and when each started and ended.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])

CONVERGE_TIMEOUT = 120.0
SETTLE = 3.0


def _launch(impl: str, tmp: Path):
    if impl == "ours":
        from paglets.config.startup import bundled_launch_config_text, parse_launch_config

        return parse_launch_config(bundled_launch_config_text())
    from paglets.config.startup import bundled_launch_config_text, load_launch_config

    text = re.sub(
        r'(class = "paglets.system.compute_slots.agent:ComputeSlotsAgent"(?:\n[^\n\[]*)*?)'
        r'state = \{ service_scope = "mesh" \}',
        r'\1state = { service_scope = "mesh", max_load_per_cpu = 1000.0 }',
        bundled_launch_config_text(),
    )
    assert "max_load_per_cpu = 1000.0" in text
    path = tmp / "launch.toml"
    path.write_text(text)
    return load_launch_config(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=("ours", "ref"), required=True)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--home-compute", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    if args.impl == "ours":
        from _compute_jobs_ours import SpinJob, SpinState
    else:
        from _compute_jobs_ref import SpinJob, SpinState
    from paglets.runtime.host import Host

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        markers = tmp / "markers"
        markers.mkdir()
        config = _launch(args.impl, tmp)
        hosts = []
        extra = {} if args.impl == "ours" else {"mesh_lan_discovery": False, "mesh_multicast": False}
        try:
            for i in range(args.hosts):
                host = Host(
                    f"h{i}",
                    "127.0.0.1",
                    0,
                    peers=[hosts[0].address] if hosts else [],
                    mesh_version="bench",
                    persistence_dir=tmp / f"h{i}",
                    launch_config=config,
                    **extra,
                )
                host.start_background()
                hosts.append(host)
            deadline = time.perf_counter() + CONVERGE_TIMEOUT
            while not all(len(h.list_hosts(online_only=True)) == args.hosts for h in hosts):
                if time.perf_counter() > deadline:
                    raise SystemExit("no convergence")
                time.sleep(0.05)
            time.sleep(SETTLE)  # eager services start and exchange their first statuses
            submitted = time.time()
            for index in range(args.jobs):
                hosts[0].create(
                    SpinJob,
                    SpinState(
                        seconds=args.seconds,
                        marker_dir=str(markers),
                        label=f"job{index:02d}",
                        cpu_cores=1,
                        memory_bytes=64 << 20,
                        estimated_runtime_seconds=args.seconds,
                        allow_home_compute=args.home_compute,
                    ),
                )
            created = time.time()
            deadline = time.perf_counter() + args.timeout
            while len(list(markers.glob("*.json"))) < args.jobs:
                if time.perf_counter() > deadline:
                    break
                time.sleep(0.05)
            done = [json.loads(p.read_text()) for p in sorted(markers.glob("*.json"))]
        finally:
            for host in hosts:
                host.stop()
    ended = max((d["ended"] for d in done), default=time.time())
    print(
        json.dumps(
            {
                "impl": args.impl,
                "jobs": args.jobs,
                "finished": len(done),
                "total_s": ended - submitted,
                "create_s": created - submitted,
                "first_start_s": min((d["started"] for d in done), default=0.0) - submitted,
                "per_host": {
                    h: sum(1 for d in done if d["host"] == h) for h in sorted({d["host"] for d in done})
                },
                "waits_s": sorted(round(d["started"] - submitted, 2) for d in done),
            }
        )
    )


if __name__ == "__main__":
    main()
