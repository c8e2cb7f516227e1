from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paglets.wire.checksum import crc32_combine


@given(st.binary(max_size=512), st.binary(max_size=512))
def test_combine_equals_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("length", [1, 1023, 1 << 16, (1 << 20) - 1, 1 << 20])
def test_combine_for_frame_sized_tails(length: int) -> None:
    a = b"paglets"
    b = bytes(range(256)) * (length // 256) + bytes(length % 256)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_combine_with_empty_tail_and_negative_length() -> None:
    assert crc32_combine(1234, 0, 0) == 1234
    with pytest.raises(ValueError, match="negative"):
        crc32_combine(0, 0, -1)
