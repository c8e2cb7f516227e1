"""Running an example agent from a command: create it on a host, poll it, clean up whatever happens.

The example commands (``paglets examples ...``, ``paglets search ...`` and their ``paglets-*`` scripts)
start a coordinator paglet on the entry host and then ask it, with short non-blocking calls, for what
is new (a cursor or an offset): the results are printed where the user ran the command, as they come.
:func:`poll` paces those calls (quickly at first, then every :data:`MAX_POLL_INTERVAL` seconds) and
stops at the command's deadline; :func:`dispose_quietly` removes the coordinator at the end, also after
an error or Ctrl-C (a coordinator nobody collects disposes itself after a while anyway).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from paglets.cli._common import CommandError

if TYPE_CHECKING:
    from paglets.cli._entry import Entry
    from paglets.remote.client import HostClient
    from paglets.remote.proxy import PagletProxy

__all__ = [
    "MAX_POLL_INTERVAL",
    "create_paglet",
    "dispose_quietly",
    "parse_size",
    "poll",
    "remote_host",
]

#: Seconds between two polls once a job has run for a while (the first polls come faster).
MAX_POLL_INTERVAL: Final = 0.25
#: Seconds the first poll waits.
FIRST_POLL_INTERVAL: Final = 0.02

T = TypeVar("T")

_UNITS: Final = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``64K``, ``1.5M``, ``2G``, ``4096`` or ``64KB`` → bytes (powers of 1024); for argparse."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        amount = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 64K, 16M or 4096)") from None
    if not 0 <= amount < 1 << 50:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(amount * _UNITS[unit])


def remote_host(entry: Entry, name_or_url: str) -> tuple[str, str]:
    """``(name, url)`` of a host of the entry host's mesh; one clear line when it is unknown or offline."""
    wanted = name_or_url.strip()
    host = entry.lookup(wanted)
    if host is None:
        raise CommandError(f"unknown host {wanted!r} (known: {entry.names()})")
    if not host.get("online"):
        raise CommandError(f"host {wanted!r} is offline according to {entry.name}")
    return str(host["name"]), str(host["url"]).rstrip("/")


def create_paglet(
    client: HostClient, url: str, class_name: str, *, state: dict[str, Any] | None = None, timeout: float
) -> PagletProxy:
    """Create a paglet of ``class_name`` (``module:Qual.Name``) on the host at ``url``."""
    from paglets.remote.proxy import PagletProxy

    body: dict[str, Any] = {"agent_class_name": class_name}
    if state:
        body["state"] = state
    reply = client.post_json(f"{url}/agents", body, timeout=timeout)
    wire = reply.get("proxy") if isinstance(reply, dict) else None
    if not isinstance(wire, dict):
        raise CommandError(f"{url} did not create {class_name} (answered {str(reply)[:80]!r})")
    return PagletProxy.from_wire(wire, client)


def dispose_quietly(*proxies: PagletProxy | None, timeout: float = 5.0) -> None:
    """Dispose each proxy's paglet (once per paglet); one already gone, or a host not answering, is fine."""
    seen: set[tuple[str, str]] = set()
    for proxy in proxies:
        if proxy is None:
            continue
        key = (proxy.host_url.rstrip("/"), proxy.agent_id)
        if key in seen:
            continue
        seen.add(key)
        try:
            if proxy.client is not None:
                proxy.client.post_json(
                    f"{proxy.host_url.rstrip('/')}/agents/{proxy.agent_id}/dispose", {}, timeout=timeout
                )
            else:
                proxy.dispose()
        except Exception:
            pass


def poll(
    read: Callable[[float], T],
    done: Callable[[T], bool],
    *,
    deadline: float,
    on_reply: Callable[[T], None] | None = None,
) -> T:
    """Call ``read(timeout)`` until ``done(reply)``; ``TimeoutError`` once ``deadline`` (monotonic) passed.

    Every reply goes to ``on_reply`` first (print what is new there). The pause between calls grows from
    :data:`FIRST_POLL_INTERVAL` to :data:`MAX_POLL_INTERVAL`.
    """
    pause = FIRST_POLL_INTERVAL
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        reply = read(max(0.5, min(left, 30.0)))
        if on_reply is not None:
            on_reply(reply)
        if done(reply):
            return reply
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        time.sleep(min(pause, left))  # the pace of polling a remote job, not a wait for an outcome
        pause = min(MAX_POLL_INTERVAL, pause * 2)
