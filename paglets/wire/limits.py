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

# --- errors crossing a boundary -----------------------------------------------------------------------

#: Longest error message (characters) carried in an ``ErrorInfo`` or a JSON error body; longer text is
#: cut. Together with the traceback bound an error always fits in one IPC frame.
MAX_ERROR_MESSAGE: Final = 16 * KiB

#: Longest traceback text (characters) carried with an error; the most recent lines are kept.
MAX_ERROR_TRACEBACK: Final = 64 * KiB

#: Longest exception type name (characters) carried with an error.
MAX_ERROR_TYPE_NAME: Final = 256

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

#: Largest raw (decompressed) content of one state frame. A zstd frame must declare its content size and
#: it must not pass this, so one frame can never expand beyond it (decompression-bomb guard).
MAX_FRAME_RAW: Final = STATE_FRAME_SIZE

#: Largest number of state frames in one envelope. Bounds the per-frame work a receiver does; it allows
#: 64 KiB frames for a state of ``MAX_STATE_BYTES``.
MAX_STATE_FRAMES: Final = 65_536

# --- HTTP control plane -----------------------------------------------------------------------------------

#: Longest request line (method, target, version). Paths carry only ids and short query strings.
MAX_REQUEST_LINE: Final = 8 * KiB

#: Total size of all request headers together (h11's ``max_incomplete_event_size`` too).
MAX_HEADER_BYTES: Final = 16 * KiB

#: Number of request headers. Real clients send fewer than 20.
MAX_HEADER_COUNT: Final = 100

#: Largest JSON request body read whole: the routes that carry user values (messages with their
#: arguments, creations with an inline state). Bulk data belongs in envelopes and artifacts.
MAX_JSON_BODY: Final = 64 * MiB

#: Largest JSON body of every other control route (dispose, moves, transfers, leases). They carry ids,
#: a ticket or a request of a few hundred bytes; 1 MiB leaves three orders of magnitude of room, and a
#: body at the bound decodes in milliseconds, so it cannot stall a host.
MAX_CONTROL_BODY: Final = 1 * MiB

#: Deepest nesting of lists and objects the JSON binary-tag walk follows. Real control bodies nest a
#: few levels; the bound keeps the walk far from the interpreter's recursion limit.
MAX_JSON_DEPTH: Final = 256

#: Largest streamed request body (movement envelope, artifact upload). Hosts can lower it.
MAX_STREAM_BODY: Final = 8 * GiB

#: Concurrent connections one server accepts before it answers 503 and closes new ones.
MAX_CONNECTIONS: Final = 1024

#: Seconds a connection may stay idle between requests (keep-alive) before the server closes it.
IDLE_TIMEOUT: Final = 60.0

#: Seconds the server waits for the next bytes of a started request (slow-client guard).
READ_TIMEOUT: Final = 30.0

#: Longest deadline a client may ask for a synchronous message (``"timeout"`` of ``POST .../messages``).
#: A day: handlers that run longer should answer at once and report later (a oneway message back, or
#: their state).
MAX_SEND_TIMEOUT: Final = 86400.0

# --- mailboxes ----------------------------------------------------------------------------------------------

#: Messages waiting in one paglet's mailbox before senders get ``MailboxFullError``.
MAILBOX_DEPTH: Final = 10_000
