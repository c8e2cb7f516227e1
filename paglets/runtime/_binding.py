"""Bind addresses: ``auto`` resolution and the watcher that rebinds when the LAN address changes.

``auto`` means the IPv4 address this machine would use for its default route, found with a UDP
``connect`` (no packet is sent), else a non-loopback address of the host name, else ``127.0.0.1``.
``0.0.0.0`` binds every interface and publishes the resolved LAN address.

When any configured bind address is ``auto``, the host re-resolves every ``bind_watch_interval``
seconds; on a change it binds the new addresses on the same port, and only once that worked closes the
old servers (a failed rebind keeps the old binding), updates its address, tells the mesh, and emits a
``context-rebind`` event with ``old_address``, ``new_address`` and ``bind_hosts``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence

__all__ = ["AUTO", "resolve_auto_address", "resolve_bind_hosts"]

AUTO = "auto"

#: Where the routing lookup of ``auto`` points (no packet is sent to it).
_ROUTE_PROBE = ("8.8.8.8", 80)


def resolve_auto_address() -> str:
    """The LAN IPv4 address for the default route, a non-loopback address of the host name, or loopback."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(_ROUTE_PROBE)
        address = str(probe.getsockname()[0])
        if address and not address.startswith("0."):
            return address
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(info[4][0])
            if not address.startswith("127."):
                return address
    return "127.0.0.1"


def resolve_bind_hosts(specs: Sequence[str]) -> list[str]:
    """Configured bind addresses with every ``auto`` resolved (duplicates dropped, order kept)."""
    resolved: list[str] = []
    for spec in specs:
        address = resolve_auto_address() if spec == AUTO else spec
        if address not in resolved:
            resolved.append(address)
    return resolved
