"""The relay's delivery protocol (``proto/PROTOCOL.md`` §8): what a hub hands a connect-mode host.

A request for a connect-mode host reaches its hub at ``/relay/hosts/<name>/<path>``; the hub turns it
into a :class:`RelayDelivery` and answers the host's long poll with a :class:`RelayBatch` of them,
MessagePack-encoded (bodies stay raw bytes, nothing is base64'd). Small bodies travel inside the
delivery; larger ones (envelopes, artifacts) are streamed by the host from the hub on demand, as they
arrive at the hub. Sans-IO: Structs and their codec only.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "INLINE_BODY_LIMIT",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_DELIVERIES",
    "RELAY_CONTENT_TYPE",
    "RelayBatch",
    "RelayDelivery",
    "decode_batch",
    "encode_batch",
]

#: Content type of a poll answer.
RELAY_CONTENT_TYPE: Final = "application/x-paglets-relay"

#: Request bodies up to this size travel inside their delivery (one round trip less); larger ones are
#: streamed from the hub (``GET /relay/deliveries/{id}/body``).
INLINE_BODY_LIMIT: Final = 64 * 1024

#: Most deliveries one poll answer carries.
MAX_BATCH_DELIVERIES: Final = 256

#: Inline body bytes one poll answer carries at most (a delivery over it waits for the next poll).
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024


class RelayDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One relayed request.

    ``seq`` numbers the deliveries of one session from 1 (the host acknowledges them cumulatively with
    its next poll's ``after``); ``delivery_id`` names it at the hub (32 hex digits). ``target`` is the
    request's path and query on the connect-mode host. ``body`` is the whole body when it travels
    inline; ``streamed`` says the body must be fetched from the hub (``body_length`` is its declared
    length, ``None`` when chunked). ``expires_in``: seconds left, when the hub sent it, before the hub
    withdraws it unless the host's next poll acknowledged it (informational: the hub decides).
    """

    seq: int
    delivery_id: str
    method: str
    target: str
    headers: list[tuple[str, str]] = []
    body: bytes | None = None
    streamed: bool = False
    body_length: int | None = None
    expires_in: float = 10.0


class RelayBatch(msgspec.Struct, frozen=True, kw_only=True):
    """A poll answer: the hub's incarnation (it changes when the hub restarts), the session it serves,
    the deliveries (possibly none: the poll timed out, or a newer poll of the session replaced it), and
    ``granted``: the ids of deliveries the poll acknowledged (``after``) that the hub hands over for good.
    A host runs a delivery only once it is granted; one acknowledged but not granted was withdrawn (its
    delivery timeout ended first) and must never run."""

    hub: str
    session: str
    deliveries: list[RelayDelivery] = []
    granted: list[str] = []


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(RelayBatch)


def encode_batch(batch: RelayBatch) -> bytes:
    return _ENCODER.encode(batch)


def decode_batch(data: bytes) -> RelayBatch:
    """``msgspec.DecodeError`` / ``msgspec.ValidationError`` for bytes that are not a batch."""
    return _DECODER.decode(data)
