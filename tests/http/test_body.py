"""Body framing without I/O: the byte queue and the three decoders, byte by byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import FrameError, LimitExceededError
from paglets.http._body import (
    END,
    NEED_DATA,
    ByteQueue,
    ChunkedDecoder,
    FixedLengthDecoder,
    Piece,
    Signal,
    UntilCloseDecoder,
    decoder_for,
)

Decoder = FixedLengthDecoder | ChunkedDecoder | UntilCloseDecoder


def chunked(decoder_limit: int = 1024) -> ChunkedDecoder:
    return ChunkedDecoder(max_trailer_bytes=decoder_limit, max_trailer_lines=10)


def decode_split(decoder: Decoder, data: bytes, cuts: list[int], *, eof: bool = True) -> tuple[bytes, bytes]:
    """Feed ``data`` cut at ``cuts``; returns (body, what is left in the queue)."""
    queue = ByteQueue()
    body: list[Piece] = []
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    done = False
    for index, piece in enumerate(pieces):
        queue.append(piece)
        last = index == len(pieces) - 1
        while True:
            result = decoder.next(queue, eof and last)
            if result is NEED_DATA:
                break
            if result is END:
                done = True
                break
            assert not isinstance(result, Signal)
            body.append(result)
        if done:
            for later in pieces[index + 1 :]:
                queue.append(later)
            break
    if not pieces and eof:
        assert decoder.next(queue, True) is END
        done = True
    assert done or not eof
    rest = b"".join(bytes(p) for p in iter(lambda: queue.take(1 << 30), None))
    return b"".join(bytes(p) for p in body), rest


def encode_chunked(body: bytes, sizes: list[int], trailers: list[bytes]) -> bytes:
    out = []
    position = 0
    for size in sizes:
        part = body[position : position + size]
        if not part:
            break
        out.append(b"%x\r\n" % len(part) + part + b"\r\n")
        position += len(part)
    if position < len(body):
        rest = body[position:]
        out.append(b"%X;ext=1\r\n" % len(rest) + rest + b"\r\n")
    out.append(b"0\r\n" + b"".join(t + b"\r\n" for t in trailers) + b"\r\n")
    return b"".join(out)


# --- ByteQueue -------------------------------------------------------------------------------------------


def test_queue_take_is_zero_copy_for_whole_objects() -> None:
    queue = ByteQueue()
    first = b"hello"
    queue.append(first)
    queue.append(b"")
    queue.append(b"world")
    assert len(queue) == 10
    assert queue.take(100) is first
    piece = queue.take(3)
    assert isinstance(piece, memoryview)
    assert bytes(piece) == b"wor"
    assert bytes(queue.take(100) or b"") == b"ld"
    assert queue.take(1) is None
    assert not queue


def test_queue_push_front_and_lines_across_objects() -> None:
    queue = ByteQueue()
    queue.append(b"ab")
    queue.append(b"c\r")
    queue.append(b"\nrest")
    assert queue.read_line(100) == b"abc\r\n"
    queue.push_front(b"xy\n")
    assert queue.read_line(100) == b"xy\n"
    assert queue.read_line(100) is None
    assert len(queue) == 4
    with pytest.raises(FrameError):
        queue.read_line(3)


# --- decoders ---------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8), st.binary(max_size=20))
def test_fixed_length_split_invariance(body: bytes, cuts: list[int], following: bytes) -> None:
    decoded, rest = decode_split(FixedLengthDecoder(len(body)), body + following, cuts, eof=False)
    assert decoded == body
    assert rest == following


@settings(max_examples=200)
@given(
    st.binary(max_size=400),
    st.lists(st.integers(1, 50), max_size=10),
    st.lists(st.sampled_from([b"X-A: 1", b"Digest: abc"]), max_size=3),
    st.lists(st.integers(0, 600), max_size=12),
    st.binary(max_size=20),
)
def test_chunked_split_invariance(
    body: bytes, sizes: list[int], trailers: list[bytes], cuts: list[int], following: bytes
) -> None:
    wire = encode_chunked(body, sizes, trailers)
    decoded, rest = decode_split(chunked(), wire + following, cuts, eof=False)
    assert decoded == body
    assert rest == following


@pytest.mark.parametrize(
    "wire",
    [
        b"g\r\n",
        b"\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXY0\r\n\r\n",
        b"10000000000000000\r\n",
        b"0\r\nbad trailer\n\r\n",
        b"-1\r\n",
    ],
)
def test_chunked_rejects_malformed(wire: bytes) -> None:
    with pytest.raises(FrameError):
        decode_split(chunked(), wire, [], eof=False)


def test_chunked_trailers_are_bounded() -> None:
    wire = b"0\r\n" + b"X: " + b"a" * 2000 + b"\r\n\r\n"
    with pytest.raises((LimitExceededError, FrameError)):
        decode_split(chunked(decoder_limit=100), wire, [], eof=False)


def test_truncated_bodies_raise_at_eof() -> None:
    with pytest.raises(FrameError, match="3 of 5"):
        decode_split(FixedLengthDecoder(5), b"abc", [])
    with pytest.raises(FrameError):
        decode_split(chunked(), b"5\r\nab", [])


def test_until_close_runs_to_eof() -> None:
    decoded, rest = decode_split(UntilCloseDecoder(), b"everything until the end", [3, 9])
    assert decoded == b"everything until the end"
    assert rest == b""


def test_decoder_for_framing_rules() -> None:
    limits = {"max_trailer_bytes": 100, "max_trailer_lines": 10}
    assert isinstance(decoder_for([], **limits), FixedLengthDecoder)
    assert decoder_for([(b"content-length", b"7")], **limits).next(ByteQueue(), False) is NEED_DATA
    assert isinstance(decoder_for([(b"transfer-encoding", b"chunked")], **limits), ChunkedDecoder)
    assert isinstance(decoder_for([], response_status=200, **limits), UntilCloseDecoder)
    for status, method in ((204, b"GET"), (304, b"GET"), (200, b"HEAD")):
        decoder = decoder_for(
            [(b"content-length", b"7")], response_status=status, request_method=method, **limits
        )
        assert decoder.done
