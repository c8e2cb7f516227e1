"""Helper process for ``test_artifacts_http.py`` (not a test module).

``python _artifact_server.py ROOT`` serves an artifact store in ``ROOT`` on 127.0.0.1 and prints its port;
it stops when its stdin closes. ``GET /rss?reset=1`` resets the kernel's peak resident set of this process
(``/proc/self/clear_refs``) and returns the current one; ``GET /rss`` returns the current resident set and
the peak since the last reset (``VmHWM``), both in bytes — an exact high-water mark, no sampling.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from paglets.artifacts import ArtifactStore
from paglets.http import HttpServer, Request, Response, Router, json_response
from paglets.http.server import new_event_loop
from paglets.runtime._artifact_routes import build_artifact_routes


def status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        found = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M)
    assert found is not None
    return int(found.group(1)) * 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")


def main(root: Path) -> None:
    router = Router()
    port_box: list[int] = []
    store = ArtifactStore(root, host_url=lambda: f"http://127.0.0.1:{port_box[0]}", max_bytes=None)

    async def rss(request: Request) -> Response:
        if request.query.get("reset"):
            reset_peak()
        return json_response({"rss": status_kib("VmRSS"), "peak": status_kib("VmHWM")})

    router.get("/rss", rss)
    build_artifact_routes(router, store)

    async def serve() -> None:
        server = HttpServer(router)
        port_box.append(await server.start(["127.0.0.1"], 0))
        print(port_box[0], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.close(deadline=1.0)

    loop = new_event_loop()
    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()
        store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
