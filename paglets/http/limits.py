"""Limits and timeouts of the HTTP layer, each with its reason.

The protocol-wide limits (request line, header bytes and count, JSON and streamed body sizes, connection
count, idle and read timeouts) live in :mod:`paglets.wire.limits`; this module adds the ones that only
the HTTP drivers need and gathers everything a server enforces into :class:`ServerLimits`, so that a host
can lower any of them (tests shrink the timeouts to milliseconds).

Slow-client rules enforced by the server (all measured on the loop's monotonic clock):

- **first request**: a new connection must deliver the complete head of its first request within
  ``first_request_timeout`` of being accepted; one that sent nothing by then is closed silently, one
  that sent part of a head gets 408 (connections that never speak cannot hold slots for long);
- **idle**: a keep-alive connection with no byte of a next request for ``idle_timeout`` is closed
  silently;
- **header**: once the first byte of a request arrived, the whole head must arrive within
  ``header_timeout`` (total, so a client that trickles one byte at a time — "slowloris" — cannot extend
  it);
- **body stall**: while a handler waits for body bytes, the client must send something within
  ``read_timeout``;
- **body rate**: over the time a handler spends *waiting* for the client, the client must average at
  least ``min_body_rate`` bytes per second after a grace period of ``body_rate_grace`` seconds
  (time the handler spends on its own work, when reading is paused by backpressure, does not count);
- **write**: a client that does not read its response (the transport stays above its write high-water
  mark) for ``write_timeout`` is disconnected.

Admission rules (see :mod:`paglets.http.server`): at most ``max_connections_per_address`` connections
from one peer address and ``max_connections`` in all; when all slots are taken, the connection idle the
longest (waiting for a request, with no byte of it received) is closed to make room, and only when none
is idle is a new connection answered 503.

JSON bodies of ``json_offload_threshold`` bytes or more are decoded in a small thread pool of
``json_decode_workers`` threads instead of on the event loop.
"""

from __future__ import annotations

from typing import Final

import msgspec

from paglets.wire.limits import (
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_JSON_BODY,
    MAX_REQUEST_LINE,
    MAX_STREAM_BODY,
    READ_TIMEOUT,
    KiB,
    MiB,
)

__all__ = [
    "BODY_RATE_GRACE",
    "CLIENT_CONNECT_TIMEOUT",
    "CLIENT_IDLE_TIMEOUT",
    "CLIENT_MAX_IDLE_PER_HOST",
    "CLIENT_TIMEOUT",
    "CLOSE_LINGER",
    "DOWNLOAD_CHUNK",
    "DRAIN_LIMIT",
    "FIRST_REQUEST_TIMEOUT",
    "HEADER_TIMEOUT",
    "HEAD_FEED",
    "JSON_DECODE_WORKERS",
    "JSON_OFFLOAD_THRESHOLD",
    "LINGER_MAX_BYTES",
    "LISTEN_BACKLOG",
    "MAX_CHUNK_LINE",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "MAX_RESPONSE_BODY",
    "MAX_RESPONSE_HEAD",
    "MIN_BODY_RATE",
    "RECEIVE_HIGH_WATER",
    "SHUTDOWN_DEADLINE",
    "TLS_HANDSHAKE_TIMEOUT",
    "WRITE_HIGH_WATER",
    "WRITE_TIMEOUT",
    "ServerLimits",
]

# --- server ---------------------------------------------------------------------------------------------

#: Seconds from accepting a connection to the end of the head of its first request. Our clients connect
#: only when they have a request to send and write it at once, so a working client needs one round trip;
#: 10 s leaves room for a few TCP retransmissions on a lossy link while a connection that never speaks
#: frees its slot six times sooner than the keep-alive ``IDLE_TIMEOUT`` would.
FIRST_REQUEST_TIMEOUT: Final = 10.0

#: Connections one peer address may hold open at once (a quarter of ``MAX_CONNECTIONS``). Legitimate
#: heavy users stay far below it: a mesh peer keeps at most ``CLIENT_MAX_IDLE_PER_HOST`` idle
#: connections plus one per request in flight, a machine running 16 client processes holds 16, and a
#: relay or a NAT gateway in front of many clients still fits; one address can take at most a quarter of
#: the slots, so it cannot lock everyone else out.
MAX_CONNECTIONS_PER_ADDRESS: Final = 256

#: JSON bodies of this many bytes or more are decoded in a worker thread, not on the event loop. A
#: decode costs 5-30 ns per byte (dense small objects are the slow case), so a body below the threshold
#: holds the loop for at most a few milliseconds, less than the hop to a thread and back is worth.
JSON_OFFLOAD_THRESHOLD: Final = 256 * KiB

#: Worker threads decoding large JSON bodies (one server's pool). Decoding holds the interpreter lock for
#: its C part, so more threads add no speed; two let one decode start while another finishes, and the
#: queue behind them is bounded by the connection count.
JSON_DECODE_WORKERS: Final = 2

#: Seconds from the first byte of a request to the end of its head. A real client sends its head in one
#: packet; the total bound stops a client from holding a slot by trickling header bytes.
HEADER_TIMEOUT: Final = 10.0

#: Minimum average upload rate (bytes per second of waiting) a client must keep once the grace period is
#: over. 8 KiB/s is far below any working link, so only clients that try to hold a slot are cut.
MIN_BODY_RATE: Final = 8 * KiB

#: Seconds of waiting allowed before ``MIN_BODY_RATE`` applies (slow start, a paused sender).
BODY_RATE_GRACE: Final = 10.0

#: Seconds a response may stay stuck in the transport because the client does not read it.
WRITE_TIMEOUT: Final = 30.0

#: Received bytes buffered per connection before the server stops reading from the socket (backpressure
#: towards a client that sends faster than its handler consumes, or pipelines without end).
RECEIVE_HIGH_WATER: Final = 1 * MiB

#: Transport write buffer size above which a streaming response waits for the client to read.
WRITE_HIGH_WATER: Final = 256 * KiB

#: Largest unread request body the server reads and discards to keep a connection alive after the
#: handler answered without reading it; larger (or chunked) leftovers close the connection instead.
DRAIN_LIMIT: Final = 64 * KiB

#: Largest chunk-size line of a chunked body (hex size plus extensions, which we ignore).
MAX_CHUNK_LINE: Final = 4 * KiB

#: Bytes handed to h11 at a time while a request or response head is parsed. The leftover after the
#: head is copied back out of h11 once per message, so this bounds that copy.
HEAD_FEED: Final = 4 * KiB

#: Seconds a connection that we close while the peer may still be sending stays half-closed, discarding
#: input, so that the peer reads our last response instead of a reset.
CLOSE_LINGER: Final = 2.0

#: Bytes discarded during a lingering close; then the connection stops reading until ``CLOSE_LINGER`` ends.
LINGER_MAX_BYTES: Final = 1 * MiB

#: Default deadline of a graceful shutdown (in-flight requests may finish until then).
SHUTDOWN_DEADLINE: Final = 5.0

#: Listen backlog of each bound socket (the kernel caps it at ``net.core.somaxconn``).
LISTEN_BACKLOG: Final = 1024

# --- clients --------------------------------------------------------------------------------------------

#: Default seconds a client waits on each send or receive of a request.
CLIENT_TIMEOUT: Final = 10.0

#: Default seconds a client waits for a TCP connection.
CLIENT_CONNECT_TIMEOUT: Final = 5.0

#: Seconds a TLS client has to complete its handshake with a host that serves HTTPS itself (a socket
#: that never finishes one cannot hold a slot longer than a plain one that never speaks).
TLS_HANDSHAKE_TIMEOUT: Final = 10.0

#: Idle keep-alive connections a client keeps per (scheme, host, port).
CLIENT_MAX_IDLE_PER_HOST: Final = 8

#: Seconds an idle pooled connection is reused; older ones are closed (below the server's
#: ``IDLE_TIMEOUT`` so that we rarely race the server's own close).
CLIENT_IDLE_TIMEOUT: Final = 30.0

#: Largest response head a client accepts (status line plus headers).
MAX_RESPONSE_HEAD: Final = 64 * KiB

#: Largest response body ``request``/``request_json`` read whole; use ``stream`` for larger downloads.
MAX_RESPONSE_BODY: Final = MAX_JSON_BODY

#: Default receive size of streaming downloads.
DOWNLOAD_CHUNK: Final = 256 * KiB


class ServerLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one :class:`~paglets.http.server.HttpServer` enforces (see the module docstring)."""

    max_request_line: int = MAX_REQUEST_LINE
    max_header_bytes: int = MAX_HEADER_BYTES
    max_header_count: int = MAX_HEADER_COUNT
    #: Default limit of ``Request.body()`` / ``Request.json()``.
    max_json_body: int = MAX_JSON_BODY
    #: Default limit of ``Request.stream()``.
    max_stream_body: int = MAX_STREAM_BODY
    max_connections: int = MAX_CONNECTIONS
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    first_request_timeout: float = FIRST_REQUEST_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    header_timeout: float = HEADER_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    min_body_rate: int = MIN_BODY_RATE
    body_rate_grace: float = BODY_RATE_GRACE
    receive_high_water: int = RECEIVE_HIGH_WATER
    write_high_water: int = WRITE_HIGH_WATER
    drain_limit: int = DRAIN_LIMIT
    close_linger: float = CLOSE_LINGER
    linger_max_bytes: int = LINGER_MAX_BYTES
    json_offload_threshold: int = JSON_OFFLOAD_THRESHOLD
    json_decode_workers: int = JSON_DECODE_WORKERS

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"ServerLimits.{name} must be positive, got {value!r}")
