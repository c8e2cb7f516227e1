"""256 MiB streamed through the server and the client with bounded memory (separate processes).

Each process measures itself, sampling its resident set (``/proc/self/statm``) at every piece it sends
or receives: growth = the largest sample during the transfer minus the resident set just before it. Both
must stay under 32 MiB while 256 MiB pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paglets.http import HttpClient

HELPER = Path(__file__).with_name("_memproc.py")
SIZE = 256 * 1024 * 1024
MAX_GROWTH = 32 * 1024 * 1024
TIMEOUT = 90.0


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(TIMEOUT)
        proc.stdout.close()


def server_rss(port: int, *, reset: bool = False) -> dict[str, int]:
    with HttpClient() as client:
        query = "?reset=1" if reset else ""
        result: dict[str, int] = client.request_json("GET", f"http://127.0.0.1:{port}/rss{query}")
        return result


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["upload", "download"])
def test_256_mib_with_bounded_memory(server_port: int, kind: str) -> None:
    before = server_rss(server_port, reset=True)
    out = subprocess.run(
        [sys.executable, str(HELPER), kind, str(server_port), str(SIZE)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    client = json.loads(out.stdout.strip().splitlines()[-1])
    after = server_rss(server_port)
    assert client["result"] == {"size": SIZE, "crc": client["expected_crc"]}
    client_growth = client["observed"] - client["baseline"]
    server_growth = after["observed"] - before["rss"]
    assert client_growth < MAX_GROWTH, f"client grew by {client_growth / 2**20:.1f} MiB"
    assert server_growth < MAX_GROWTH, f"server grew by {server_growth / 2**20:.1f} MiB"
