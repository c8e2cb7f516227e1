"""Every size and count limit of the paglets protocols, each with its reason.

These are the defaults; a ``Host`` may lower (or, where noted, raise) some of them through its
configuration. ``proto/PROTOCOL.md`` lists the same numbers; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Final

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB

# --- host <-> child IPC ---------------------------------------------------------------------------------

#: Largest IPC frame body carried inline in the ring. Larger payloads (states, big replies) go through a
#: handoff segment referenced from the frame, so the ring never needs to hold them.
MAX_IPC_FRAME: Final = 1 * MiB

#: Largest payload handed over through a handoff segment (one state snapshot or one big reply).
MAX_HANDOFF_BYTES: Final = 4 * GiB

# --- movement envelope ----------------------------------------------------------------------------------

#: Largest envelope metadata (ids, class names, ticket, registered files). Metadata is decoded whole,
#: so it must stay small; 1 MiB allows thousands of registered files.
MAX_ENVELOPE_METADATA: Final = 1 * MiB

#: Largest decompressed state carried by one envelope. Bounds the memory a receiver commits to.
MAX_STATE_BYTES: Final = 4 * GiB

#: Size of one state frame before compression. Large enough to amortise per-frame cost and for zstd
#: to find redundancy, small enough that a few frames in flight stay a small multiple of it.
STATE_FRAME_SIZE: Final = 1 * MiB

#: Largest stored (possibly compressed) frame payload a decoder accepts. Compressed frames of
#: incompressible data may be slightly larger than their input; raw frames are at most
#: ``STATE_FRAME_SIZE``. A peer may choose smaller frames, never larger ones.
MAX_FRAME_PAYLOAD: Final = STATE_FRAME_SIZE + 64 * KiB

#: Largest number of state frames in one envelope (``MAX_STATE_BYTES / STATE_FRAME_SIZE``).
MAX_STATE_FRAMES: Final = MAX_STATE_BYTES // STATE_FRAME_SIZE

# --- HTTP control plane -----------------------------------------------------------------------------------

#: Longest request line (method, target, version). Paths carry only ids and short query strings.
MAX_REQUEST_LINE: Final = 8 * KiB

#: Total size of all request headers together (h11's ``max_incomplete_event_size`` too).
MAX_HEADER_BYTES: Final = 16 * KiB

#: Number of request headers. Real clients send fewer than 20.
MAX_HEADER_COUNT: Final = 100

#: Largest JSON request body read whole (messages, creations with inline state, control calls).
MAX_JSON_BODY: Final = 64 * MiB

#: Largest streamed request body (movement envelope, artifact upload). Hosts can lower it.
MAX_STREAM_BODY: Final = 8 * GiB

#: Concurrent connections one server accepts before it answers 503 and closes new ones.
MAX_CONNECTIONS: Final = 1024

#: Seconds a connection may stay idle between requests (keep-alive) before the server closes it.
IDLE_TIMEOUT: Final = 60.0

#: Seconds the server waits for the next bytes of a started request (slow-client guard).
READ_TIMEOUT: Final = 30.0

# --- mailboxes ----------------------------------------------------------------------------------------------

#: Messages waiting in one paglet's mailbox before senders get ``MailboxFullError``.
MAILBOX_DEPTH: Final = 10_000
