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

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Protocol

from paglets.core.errors import PagletError

__all__ = ["AUTO", "BindingWatcher", "HostAddress", "resolve_auto_address", "resolve_bind_hosts"]

_log = logging.getLogger("paglets.runtime")

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


class HostAddress:
    """Where a host is: its bind addresses and port, and the URL it publishes (``address``)."""

    def __init__(
        self, bind_hosts: Sequence[str], port: int, public_url: str | None, relay_url: str | None = None
    ) -> None:
        self.bind_hosts = list(bind_hosts)
        self.port = port
        self.public_url = public_url
        #: A connect-mode host's address behind its hub (it listens nowhere).
        self.relay_url = relay_url

    def current(self) -> str:
        """``url`` as a callable (collaborators read the address when they need it)."""
        return self.url

    @property
    def url(self) -> str:
        """``public_url`` if set (or a connect-mode host's address behind its hub), else
        ``http://<first bind address>:<port>`` (``0.0.0.0`` shows the LAN address; IPv6 addresses in
        brackets)."""
        if self.public_url:
            return self.public_url
        if self.relay_url:
            return self.relay_url
        bind = self.bind_hosts[0]
        shown = resolve_auto_address() if bind in ("0.0.0.0", "") else bind
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"


class Rebindable(Protocol):
    """A running server whose addresses can change (``paglets.http.server.HttpServer``)."""

    async def rebind(self, bind_hosts: Sequence[str]) -> None: ...


class BindingWatcher:
    """Follows the LAN address for ``auto`` bind specs (see the module docstring).

    ``changed(old_url)`` runs after a successful rebind, once ``address`` holds the new addresses.
    """

    def __init__(
        self,
        *,
        specs: Sequence[str],
        interval: float,
        address: HostAddress,
        server: Rebindable,
        changed: Callable[[str], None],
        resolve: Callable[[Sequence[str]], list[str]] = resolve_bind_hosts,
        name: str = "",
    ) -> None:
        self._specs = list(specs)
        self._interval = interval
        self._address = address
        self._server = server
        self._changed = changed
        self._resolve = resolve
        self._name = name

    async def run(self) -> None:
        """Check every ``interval`` seconds, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._interval)
            wanted = await loop.run_in_executor(None, self._resolve, self._specs)
            if wanted != self._address.bind_hosts:
                await self.rebind(wanted)

    async def rebind(self, wanted: list[str]) -> bool:
        """Serve on ``wanted`` instead of the current addresses; whether it worked. The new addresses
        are bound before the old ones are closed; if one cannot be bound, nothing changes (the next
        check tries again)."""
        try:
            await self._server.rebind(wanted)
        except (OSError, PagletError) as exc:
            _log.error(
                "host %s cannot rebind to %s: %s; keeping %s",
                self._name,
                wanted,
                exc,
                self._address.bind_hosts,
            )
            return False
        old_url = self._address.url
        self._address.bind_hosts = list(wanted)
        self._changed(old_url)
        return True
