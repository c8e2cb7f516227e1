"""One host process for ``bench_scale.py``: ours through the ``paglets-host`` command, or paglets 2.0.

    python _scale_host.py ours NAME PORT DIR STATS [PEER]       # the command, default launch config
    python _scale_host.py reference NAME PORT DIR STATS [PEER]  # 2.0's Host with its bundled config

Both print ``serving`` on stdout once they serve and, on SIGUSR1, write ``{"served": n}`` (HTTP requests
the host has served so far) to ``STATS``. Ours runs the command's own ``main`` with ``Host`` wrapped to
install that handler, so everything else is exactly the command. The reference runs with LAN discovery
and multicast off (and is only ever started inside a network namespace), its requests counted by
wrapping its request handler.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def _on_usr1(path: str, served: Any) -> None:
    def handler(signum: int, frame: object) -> None:
        tmp = f"{path}.tmp"
        Path(tmp).write_text(json.dumps({"served": served()}))
        os.replace(tmp, path)

    signal.signal(signal.SIGUSR1, handler)


def ours(name: str, port: str, directory: str, stats: str, peer: str | None) -> int:
    import paglets.cli.host as cli
    import paglets.runtime.host as runtime_host

    base = runtime_host.Host

    class CountedHost(base):  # type: ignore[misc, valid-type]
        def start_background(self) -> Any:
            started = super().start_background()
            _on_usr1(stats, lambda: self.server_statistics().requests_served)
            return started

    runtime_host.Host = CountedHost  # the command imports it when it starts
    argv = ["--name", name, "--port", port, "--persistence-dir", directory, "--yes", "-q"]
    if os.environ.get("PAGLETS_SCALE_NO_SERVICES"):  # bench_scale --no-services: membership alone
        argv.append("--no-launch-config")
    if peer:
        argv += ["--peer", peer]
    argv += os.environ.get("PAGLETS_SCALE_HOST_ARGS", "").split()  # bench_scale --host-args
    return cli.main(argv)


def reference(name: str, port: str, directory: str, stats: str, peer: str | None) -> int:
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
    config_path = Path(directory) / "launch.toml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(bundled_launch_config_text())
    host = Host(
        name,
        "127.0.0.1",
        int(port),
        peers=[peer] if peer else [],
        mesh_version=os.environ.get("PAGLETS_MESH_VERSION", "bench"),
        mesh_lan_discovery=False,
        mesh_multicast=False,
        persistence_dir=Path(directory),
        launch_config=load_launch_config(config_path),
    )
    host.start_background()
    _on_usr1(stats, lambda: counter[0])
    print("serving", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(3600):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    kind, name, port, directory, stats, *rest = sys.argv[1:]
    run = ours if kind == "ours" else reference
    sys.exit(run(name, port, directory, stats, rest[0] if rest else None))
