"""Fuzz target: the movement envelope decoder (``paglets.wire.envelope``).

Invariant: for any input, decoding raises nothing but ``ProtocolError`` subclasses, ends (no hang), keeps
memory within the configured limits, gives the same outcome however the input is split, and anything it
accepts re-encodes to an envelope that decodes to the same metadata and state.

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

from paglets.core.errors import ProtocolError
from paglets.wire.envelope import DecodedEnvelope, EnvelopeDecoder, encode_envelope

#: Fuzz-time bound on the declared state (the production default is MAX_STATE_BYTES): keeps each run's
#: memory small while still exercising the limit checks.
MAX_STATE = 16 * 1024 * 1024


def _decode(data: bytes, step: int) -> DecodedEnvelope | type[ProtocolError]:
    decoder = EnvelopeDecoder(max_state_bytes=MAX_STATE)
    try:
        for start in range(0, len(data), step):
            decoder.feed(data[start : start + step])
        return decoder.finish()
    except ProtocolError as exc:
        return type(exc)


def test_one_input(data: bytes) -> None:
    whole = _decode(data, max(len(data), 1))
    split = _decode(data, zlib.crc32(data) % 61 + 1)  # the split depends on the input, reproducibly
    if isinstance(whole, DecodedEnvelope):
        assert isinstance(split, DecodedEnvelope), split
        assert (split.metadata, split.state) == (whole.metadata, whole.state)
        assert whole.state is not None
        again = _decode(encode_envelope(whole.metadata, whole.state), 4096)
        assert isinstance(again, DecodedEnvelope), again
        assert (again.metadata, again.state) == (whole.metadata, whole.state)
    else:
        assert split is whole, (whole, split)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
