"""Fuzz target: the host <-> child IPC frame decoder (``paglets.wire.ipc``).

Invariant: for any byte stream, the frame decoder raises nothing but ``ProtocolError`` subclasses, ends
(no hang), buffers at most one frame of ``MAX_IPC_FRAME``, yields the same messages however the stream is
split, and every message it yields re-encodes to a frame that decodes to an equal message. The request a
``HostCall`` carries (the union of ``paglets.wire.control``), and the input itself taken as a request,
decode with nothing but ``FrameError`` and re-encode to an equal request.

Run with atheris (see fuzz/README.md); without atheris, ``test_one_input`` is a plain function that
``tests/wire/test_fuzz_targets.py`` calls on the seed corpus.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, _ROOT)

import msgspec

from paglets.core.errors import FrameError, ProtocolError
from paglets.wire.control import decode_control, encode_control
from paglets.wire.ipc import FrameDecoder, HostCall, IpcMessage, decode_body, encode_frame
from paglets.wire.limits import MAX_IPC_FRAME


def _decode(data: bytes, step: int) -> tuple[list[bytes], type[ProtocolError] | None]:
    """The messages (re-encoded, so Raw payloads compare by content) and the error class, if any."""
    decoder = FrameDecoder()
    out: list[bytes] = []
    try:
        for start in range(0, len(data), step):
            decoder.feed(data[start : start + step])
            out.extend(_check_round_trip(msg) for msg in decoder)
            assert decoder.buffered <= len(data[start : start + step]) + 4 + MAX_IPC_FRAME
        decoder.finish()
    except ProtocolError as exc:
        return out, type(exc)
    return out, None


def _check_round_trip(msg: IpcMessage) -> bytes:
    frame = encode_frame(msg)
    again = decode_body(frame[4:])
    encoded = msgspec.msgpack.encode(again)
    assert encoded == msgspec.msgpack.encode(msg)
    if isinstance(msg, HostCall):
        _check_request(bytes(msg.request))
    return encoded


def _check_request(data: bytes) -> None:
    """A control request decodes (or fails with ``FrameError``) and re-encodes to an equal request."""
    try:
        request = decode_control(data)
    except FrameError:
        return
    assert decode_control(encode_control(request)) == request


def test_one_input(data: bytes) -> None:
    _check_request(data)
    whole = _decode(data, max(len(data), 1))
    split = _decode(data, zlib.crc32(data) % 13 + 1)  # the split depends on the input, reproducibly
    assert whole == split, (whole, split)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
