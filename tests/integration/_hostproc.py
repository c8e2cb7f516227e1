"""Run one host in this process until stdin closes: ``python _hostproc.py NAME PERSISTENCE_DIR [PORT]``.

Prints ``READY <address>`` once serving. Used by tests that kill a host process.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paglets.runtime.host import Host


def main() -> None:
    name, persistence = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    host = Host(name, port=port, persistence_dir=persistence, mesh_lan_discovery=False, mesh_multicast=False)
    host.start_background()
    print(f"READY {host.address}", flush=True)
    sys.stdin.read()
    host.stop()


if __name__ == "__main__":
    main()
