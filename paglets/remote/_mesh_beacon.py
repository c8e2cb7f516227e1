"""Opt-in LAN discovery: a UDP multicast beacon (never a subnet scan; docs/operations/hosts.md).

Datagram: UTF-8 JSON ``{"kind": "paglets.remote.mesh.v1", "host": <HostRef wire>}`` sent to
``239.42.74.53:48765`` with TTL 1 (never routed off the local link) once per gossip interval. A
receiver ignores datagrams larger than :data:`MAX_BEACON_BYTES`, of another ``kind``, or not decoding
to a valid ``HostRef``: a beacon is unauthenticated input and only ever *introduces* a host, which the
mesh then contacts over HTTP (with the API key, when one is configured) before trusting it as online.

There is never any scan of addresses: hosts that do not beacon are found only through seeds and
gossip.

:class:`BeaconChannel` owns two sockets on the caller's event loop: a sender (multicast TTL 1, loopback
delivery on, optional outgoing interface) and a receiver bound to the group port with ``SO_REUSEADDR``
(and ``SO_REUSEPORT`` where available) so that several hosts on one machine can listen at once, joined
to the group on ``interface`` (``0.0.0.0``: the kernel's choice).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Final

import msgspec

from paglets.core.errors import HostError
from paglets.remote._mesh_ref import HostRef

__all__ = [
    "BEACON_GROUP",
    "BEACON_KIND",
    "BEACON_PORT",
    "BEACON_TTL",
    "MAX_BEACON_BYTES",
    "BeaconChannel",
    "decode_beacon",
    "encode_beacon",
]

BEACON_KIND: Final = "paglets.remote.mesh.v1"
BEACON_GROUP: Final = "239.42.74.53"
BEACON_PORT: Final = 48765
#: One hop: beacons stay on the local link.
BEACON_TTL: Final = 1
#: Largest beacon accepted or sent. A ref with the maximum tags and properties is ~100 KiB, but
#: a beacon must fit one unfragmented datagram to be worth anything; bigger refs are simply not beaconed.
MAX_BEACON_BYTES: Final = 8 * 1024

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder()


def encode_beacon(ref: HostRef) -> bytes | None:
    """The datagram announcing ``ref``, or ``None`` when it would exceed :data:`MAX_BEACON_BYTES`."""
    wire = ref.to_wire()
    wire.pop("age", None)
    data = _ENCODER.encode({"kind": BEACON_KIND, "host": wire})
    return data if len(data) <= MAX_BEACON_BYTES else None


def decode_beacon(data: bytes) -> HostRef | None:
    """The ref a datagram announces; ``None`` for anything else (foreign traffic, garbage)."""
    if len(data) > MAX_BEACON_BYTES:
        return None
    try:
        payload: Any = _DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("kind") != BEACON_KIND:
        return None
    try:
        ref = HostRef.from_wire(payload.get("host"))
    except HostError:
        return None
    return ref.replace(age=None)


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_datagram(data)

    def error_received(self, exc: Exception) -> None:  # pragma: no cover - ICMP noise on UDP
        pass


class BeaconChannel:
    """Send and receive beacons on the running loop (see the module docstring)."""

    def __init__(
        self,
        on_datagram: Callable[[bytes], None],
        *,
        group: str = BEACON_GROUP,
        port: int = BEACON_PORT,
        interface: str = "0.0.0.0",
    ) -> None:
        self._on_datagram = on_datagram
        self.group = group
        self.port = port
        self.interface = interface
        self._sender: socket.socket | None = None
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        """Create both sockets; ``HostError`` (chained) when multicast is not available here."""
        loop = asyncio.get_running_loop()
        sender = receiver = None
        try:
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            sender.setblocking(False)
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, BEACON_TTL)
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            if self.interface != "0.0.0.0":
                sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.interface))
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                receiver.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            receiver.bind(("", self.port))
            membership = socket.inet_aton(self.group) + socket.inet_aton(self.interface)
            receiver.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            receiver.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Receiver(self._on_datagram), sock=receiver
            )
        except OSError as exc:
            if sender is not None:
                sender.close()
            if receiver is not None:
                receiver.close()
            raise HostError(f"multicast beacon unavailable on {self.group}:{self.port}: {exc}") from exc
        self._sender = sender
        self._transport = transport

    def send(self, data: bytes) -> bool:
        """Send one datagram without blocking; False when the kernel refused it (full buffer, no route)."""
        sender = self._sender
        if sender is None:
            return False
        try:
            sender.sendto(data, (self.group, self.port))
        except OSError:
            return False
        return True

    def close(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
