"""The asyncio API embedded in a web application served by its own process, driven over HTTP; and the
asyncio API's cancellation and closed-loop behaviour in this process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _paglets import Counter

from paglets.core.messages import Message
from paglets.runtime.aio import AsyncHost
from paglets.runtime.host import Host

HERE = Path(__file__).resolve().parent


@pytest.fixture
def app(tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_aio_app.py"), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def _call(url: str, method: str = "GET", timeout: float = 30) -> Any:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_web_app_embeds_an_async_host(app: str) -> None:
    agent_id = _call(f"{app}/counters", "POST")["agent_id"]
    assert _call(f"{app}/counters/{agent_id}/add?n=2", "POST") == {"count": 2}
    # a handler blocks for 1.5 s: the application's loop keeps answering meanwhile
    blocked: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: blocked.update(_call(f"{app}/counters/{agent_id}/block?s=1.5", "POST"))
    )
    started = time.monotonic()
    thread.start()
    pings = 0
    while thread.is_alive() and time.monotonic() - started < 1.2:
        assert _call(f"{app}/ping", timeout=1.0) == {"pong": True}
        pings += 1
    thread.join(30)
    assert pings >= 3
    assert blocked == {"result": "unblocked"}
    # asyncio.timeout around a send: the wait ends at once, the handler runs on
    cancel = _call(f"{app}/counters/{agent_id}/cancel")
    assert cancel["cancelled"] is True
    assert cancel["elapsed"] < 1.5
    # the paglet moves to the application's second host; the kept proxy follows it
    moved = _call(f"{app}/counters/{agent_id}/move", "POST")
    assert moved["host_url"] != app
    assert _call(f"{app}/counters/{agent_id}/add?n=1", "POST") == {"count": 3}
    assert _call(f"{app}/events?kind=dispatch&n=1") == {"kinds": ["dispatch"]}


def test_cancel_and_closed_loop(make_host: Callable[..., Host]) -> None:
    host = AsyncHost.of(make_host("alpha"))

    async def scenario() -> tuple[float, list[int]]:
        proxy = await host.create(Counter)
        task = proxy.send_future(Message("block", arg=1.0))
        await asyncio.sleep(0)  # the send is on its way
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled_after = time.monotonic() - started
        counts = [await proxy.send("add", {"n": 1}) for _ in range(3)]  # after the blocked handler
        return cancelled_after, counts

    cancelled_after, counts = asyncio.run(scenario())
    assert cancelled_after < 0.5
    assert counts == [1, 2, 3]

    # a loop closed while a call is in flight: the call finishes in its worker, its result is dropped
    loop = asyncio.new_event_loop()
    proxy = host.proxy(host.host.get_proxies()[0].agent_id)
    task = loop.create_task(proxy.send(Message("block", arg=0.3)))
    loop.run_until_complete(asyncio.sleep(0.05))
    task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert asyncio.run(proxy.send("add", {"n": 1})) == 4  # the host serves on
