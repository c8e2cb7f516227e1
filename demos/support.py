"""What every demo shares: throwaway local hosts, and running a demo as an importable module.

Paglet processes import paglet classes by ``module:QualName``, so a class defined in a script run as
``__main__`` cannot be found by them. :func:`run` imports the demo as ``demos.<name>`` (the checkout's
root goes on ``sys.path``, which the hosts hand to their paglet processes) and calls its ``main()``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def local_hosts(*names: str, mesh_version: str = "demos", timeout: float = 30.0) -> Iterator[list[object]]:
    """Start hosts ``names`` on 127.0.0.1 (free ports, temporary persistence, no LAN discovery or
    multicast), joined into one mesh; stop them and remove their files at the end."""
    from paglets.runtime.host import Host

    hosts: list[Host] = []
    with tempfile.TemporaryDirectory(prefix="paglets-demo-") as root:
        try:
            for name in names:
                host = Host(
                    name,
                    persistence_dir=Path(root) / name,
                    peers=[hosts[0].address] if hosts else [],
                    mesh_version=mesh_version,
                    mesh_lan_discovery=False,
                    mesh_multicast=False,
                    mesh_gossip_interval=0.2,
                )
                host.start_background()
                hosts.append(host)
            for host in hosts:
                for other in hosts:
                    host.wait_for_host(other.name, timeout=timeout)
            yield list(hosts)
        finally:
            for host in reversed(hosts):
                host.stop()


def parser(description: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])


def run(name: str) -> None:
    """Run ``demos.<name>.main()`` as an importable module and exit with its return code."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"demos.{name}")
    raise SystemExit(module.main())
