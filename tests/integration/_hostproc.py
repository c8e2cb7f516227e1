"""Run one host in this process until stdin closes: ``python _hostproc.py NAME PERSISTENCE_DIR [OPTIONS]``.

``OPTIONS`` is an optional JSON object of ``Host`` keyword arguments (``http_limits`` as a dict of
``ServerLimits`` fields). Prints ``READY <address>`` once serving. Used by tests that kill a host process
or watch its memory from outside.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paglets.http import ServerLimits
from paglets.runtime.host import Host


def main() -> None:
    name, persistence = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    if "http_limits" in options:
        options["http_limits"] = ServerLimits(**options["http_limits"])
    options.setdefault("mesh_lan_discovery", False)
    options.setdefault("mesh_multicast", False)
    host = Host(name, persistence_dir=persistence, **options)
    host.start_background()
    print(f"READY {host.address}", flush=True)
    sys.stdin.read()
    host.stop()


if __name__ == "__main__":
    main()
