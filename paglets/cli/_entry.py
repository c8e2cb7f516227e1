"""Finding the entry host a command talks to, and the mesh it belongs to.

Order (the first that answers ``GET /hosts`` wins):

1. ``--entry URL`` (anything with ``://`` or of the form ``host:port``): that host, nothing else;
2. ``$PAGLETS_ENTRY`` (a URL or ``host:port``), when set;
3. ``http://127.0.0.1:8765`` (a host started with the default port on this machine);
4. with ``--multicast`` only: hosts heard in LAN beacons for :data:`BEACON_LISTEN` seconds.

``--entry NAME`` (a mesh host name) goes through the same candidates and then picks the host of that
name from the mesh the candidate knows; a name is never looked up in DNS. There is never a subnet scan.
A failure names every candidate tried and why it failed.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from paglets.cli._common import CommandError

if TYPE_CHECKING:
    from paglets.remote.client import HostClient

__all__ = ["DEFAULT_ENTRY", "ENTRY_ENV", "Entry", "find_entry", "normalize_entry"]

ENTRY_ENV: Final = "PAGLETS_ENTRY"
DEFAULT_ENTRY: Final = "http://127.0.0.1:8765"
#: Seconds one candidate may take to answer ``GET /hosts``.
PROBE_TIMEOUT: Final = 3.0
#: Seconds spent listening for multicast beacons (hosts beacon about once per gossip interval).
BEACON_LISTEN: Final = 1.5
#: Beacon senders probed at most.
MAX_BEACON_CANDIDATES: Final = 16

_HOST_PORT: Final = re.compile(r"^\[?[A-Za-z0-9._:-]+\]?:\d{1,5}$")


@dataclass(frozen=True, slots=True)
class Entry:
    """The entry host (its URL and mesh name) and the hosts its mesh table lists (``HostRef`` wires)."""

    url: str
    name: str
    hosts: list[dict[str, Any]] = field(default_factory=list)

    def online(self) -> list[dict[str, Any]]:
        return [h for h in self.hosts if h.get("online")]

    def lookup(self, name_or_url: str) -> dict[str, Any] | None:
        """The host called ``name_or_url`` (or at that URL), or None."""
        wanted = name_or_url.rstrip("/")
        for host in self.hosts:
            if host.get("name") == wanted or str(host.get("url", "")).rstrip("/") == wanted:
                return host
        return None

    def names(self) -> str:
        return ", ".join(sorted(str(h.get("name")) for h in self.hosts)) or "none"


def normalize_entry(text: str) -> str | None:
    """``text`` as a base URL when it is a URL or ``host:port``; None when it is a mesh host name."""
    value = text.strip()
    if "://" in value:
        return value.rstrip("/")
    if _HOST_PORT.match(value):
        return f"http://{value}"
    return None


def _probe(client: HostClient, url: str) -> Entry:
    reply = client.get_json(f"{url}/hosts", timeout=PROBE_TIMEOUT)
    hosts = reply.get("hosts") if isinstance(reply, dict) else None
    if not isinstance(hosts, list):
        raise CommandError(f"{url} is not a paglets host (GET /hosts answered {str(reply)[:80]!r})")
    known = [h for h in hosts if isinstance(h, dict) and isinstance(h.get("url"), str)]
    own = next((h for h in known if str(h["url"]).rstrip("/") == url.rstrip("/")), None)
    if own is None:  # reached through another address (a proxy, a public URL): take its self entry
        own = next((h for h in known if h.get("online") and h.get("age") in (None, 0, 0.0)), None)
    name = str(own.get("name")) if own else url
    return Entry(url.rstrip("/"), name, known)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    lowered = text.lower()
    for marker, short in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "unknown host name"),
        ("no route", "no route to host"),
    ):
        if marker in lowered:
            return short
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _beacon_urls(timeout: float) -> list[str]:
    """URLs announced by multicast beacons heard within ``timeout`` seconds."""
    import socket
    import struct

    from paglets.remote._mesh_beacon import BEACON_GROUP, BEACON_PORT, MAX_BEACON_BYTES, decode_beacon

    urls: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", BEACON_PORT))
        membership = struct.pack("4s4s", socket.inet_aton(BEACON_GROUP), socket.inet_aton("0.0.0.0"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        deadline = time.monotonic() + timeout
        while len(urls) < MAX_BEACON_CANDIDATES:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(MAX_BEACON_BYTES + 1)
            except TimeoutError:
                break
            ref = decode_beacon(data)
            if ref is not None and ref.url not in urls:
                urls.append(ref.url)
    finally:
        sock.close()
    return urls


def find_entry(client: HostClient, entry: str | None, *, multicast: bool = False) -> Entry:
    """The entry host for ``--entry`` (None: discover one); see the module docstring."""
    from paglets.core.errors import AuthenticationError

    if entry is not None and not entry.strip():
        raise CommandError("--entry needs a host name or a URL")
    direct = normalize_entry(entry) if entry else None
    if direct is not None:
        try:
            return _probe(client, direct)
        except AuthenticationError:
            raise
        except Exception as exc:
            raise CommandError(f"cannot reach entry host {direct}: {_reason(exc)}") from None
    tried: list[str] = []
    candidates: list[str] = []
    env = os.environ.get(ENTRY_ENV, "").strip()
    if env:
        url = normalize_entry(env)
        if url is None:
            tried.append(f"{ENTRY_ENV}={env!r} (not a URL or host:port)")
        else:
            candidates.append(url)
    if DEFAULT_ENTRY not in candidates:
        candidates.append(DEFAULT_ENTRY)
    found = _first_answering(client, candidates, tried)
    if found is None and multicast:
        try:
            heard = [u for u in _beacon_urls(BEACON_LISTEN) if u not in candidates]
        except OSError as exc:
            tried.append(f"multicast beacons ({_reason(exc)})")
            heard = []
        else:
            if not heard:
                tried.append(f"multicast beacons (none heard within {BEACON_LISTEN:g} s)")
        found = _first_answering(client, heard, tried)
    if found is None:
        hint = "" if multicast else "; --multicast also listens for LAN beacons"
        raise CommandError(
            f"no reachable entry host; tried {', '.join(tried)}. Start one with 'paglets host --name NAME', "
            f"or pass --entry URL or set {ENTRY_ENV}{hint}"
        )
    if entry is None:
        return found
    host = found.lookup(entry)
    if host is None:
        raise CommandError(f"no host named {entry!r} in the mesh of {found.url} (known: {found.names()})")
    if not host.get("online"):
        raise CommandError(f"host {entry!r} ({host.get('url')}) is offline according to {found.name}")
    url = str(host["url"]).rstrip("/")
    if url == found.url:
        return found
    try:
        return _probe(client, url)
    except AuthenticationError:
        raise
    except Exception as exc:
        raise CommandError(f"cannot reach host {entry!r} at {url}: {_reason(exc)}") from None


def _first_answering(client: HostClient, candidates: list[str], tried: list[str]) -> Entry | None:
    from paglets.core.errors import AuthenticationError

    for url in candidates:
        try:
            return _probe(client, url)
        except AuthenticationError:
            raise
        except Exception as exc:
            tried.append(f"{url} ({_reason(exc)})")
    return None
