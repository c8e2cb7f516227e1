"""What a host and its spare processes say to each other (portable backend; ``paglets.runtime._spares``).

A spare process is started with ``python -m paglets.runtime.child.spare``; the host writes one
``SpareBoot`` to its stdin and closes it (the token never appears on a command line). The spare imports
the runtime, then opens ``ROLES`` connections to the host's loopback listener, each starting with
``HELLO`` (token, spare id, role). Once all are there it is *ready*. On the control connection the host
then sends length-prefixed (``FRAME_HEADER``) ``SpareMessage``s: ``SparePreload`` any number of times,
and one ``SpareSpawn`` that turns the spare into a paglet process. EOF on the control connection tells
each side that the other is gone.
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from paglets.core.errors import FrameError
from paglets.wire.limits import KiB

__all__ = [
    "FRAME_HEADER",
    "HELLO",
    "MAX_SPARE_MESSAGE",
    "ROLES",
    "SpareBoot",
    "SpareMessage",
    "SparePreload",
    "SpareSpawn",
    "decode_spare_message",
    "encode_spare_message",
]

#: The connections of a spare, in the order it opens them.
ROLE_CONTROL: Final = 0
ROLE_LINK: Final = 1
ROLE_FRAMES: Final = 2
ROLE_SPACE: Final = 3
ROLE_SERVICE: Final = 4
ROLES: Final = (ROLE_CONTROL, ROLE_LINK, ROLE_FRAMES, ROLE_SPACE, ROLE_SERVICE)

#: First bytes of every connection: 16-byte token, spare id, role.
HELLO: Final = struct.Struct("!16sII")
#: Length prefix of a control message.
FRAME_HEADER: Final = struct.Struct("!I")
#: Largest control message: a spawn carries a ``ChildConfig`` (at most 64 KiB) and ``sys.path``.
MAX_SPARE_MESSAGE: Final = 160 * KiB


class SpareBoot(msgspec.Struct, frozen=True):
    token: bytes
    spare_id: int
    address: str
    port: int
    host_pid: int
    host_dir: str
    sys_path: list[str]
    preload: list[str]


class SparePreload(msgspec.Struct, frozen=True, tag="preload"):
    modules: list[str]


class SpareSpawn(msgspec.Struct, frozen=True, tag="spawn"):
    config: bytes
    title: str
    channel_dir: str
    sys_path: list[str]


SpareMessage = SparePreload | SpareSpawn

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final[msgspec.msgpack.Decoder[SpareMessage]] = msgspec.msgpack.Decoder(SpareMessage)
BOOT_DECODER: Final = msgspec.msgpack.Decoder(SpareBoot)


def encode_spare_message(message: SpareMessage | SpareBoot) -> bytes:
    body = _ENCODER.encode(message)
    return FRAME_HEADER.pack(len(body)) + body


def decode_spare_message(body: bytes) -> SpareMessage:
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"bad spare control message: {exc}") from exc
