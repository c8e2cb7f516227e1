"""How fast do states encode, move through the envelope and decode, compared with pickle protocol 5?

For 1 KiB, 1 MiB and 64 MiB states, random (incompressible) and compressible, it times:

- ``codec``:    the state codec alone (``paglets.serialization.codec``; msgspec MessagePack of the
                dataclass if that module is missing) against ``pickle.dumps/loads(protocol=5)``;
- ``envelope``: the envelope layer alone on the encoded state bytes (encoder iterated to the end;
                decoder fed 256 KiB slices of the envelope, as a socket reader would) — no pickle
                equivalent, paglets 2.0 sent pickle bodies without compression or checksum;
- ``move``:     state object -> envelope chunks and envelope -> state object (codec + envelope)
                against pickle dumps/loads of the same object.

Each case runs in its own subprocess (``--inline`` to run in this one). Times are medians. Usage::

    .venv/bin/python bench/bench_codec.py            # table
    .venv/bin/python bench/bench_codec.py --json     # one JSON document on stdout
    .venv/bin/python bench/bench_codec.py --quick    # 1 KiB and 1 MiB only

pickle is used here only, to compare; it never appears in ``paglets/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from paglets.wire.envelope import EnvelopeDecoder, EnvelopeEncoder, EnvelopeMetadata  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
SIZES = {"1KiB": KiB, "1MiB": MiB, "64MiB": 64 * MiB}
KINDS = ("random", "compressible")
#: Wall-clock budget per timed operation; small states loop until they fill it.
SAMPLE_SECONDS = 0.02
#: Samples per operation (the median is reported).
SAMPLES = 5
#: Size of the slices the envelope decoder is fed (a socket reader's buffer).
FEED_SLICE = 256 * KiB
#: Per-case subprocess timeout.
CASE_TIMEOUT = 120.0

#: (description, summary key, check) for each target of the issue.
TARGETS: list[tuple[str, str, Callable[[float], bool]]] = [
    (
        "codec decode of a 64 MiB bytes state within 1.5x of pickle",
        "codec_decode_ratio_64MiB_random",
        lambda v: v <= 1.5,
    ),
    (
        "envelope >= 1 GB/s, 64 MiB incompressible, encode + decode",
        "envelope_roundtrip_mbps_64MiB_random",
        lambda v: v >= 1000,
    ),
    ("compressible state shrinks >= 5x", "compressible_ratio", lambda v: v >= 5),
    ("... at >= 300 MB/s (envelope encode)", "compressible_encode_mbps", lambda v: v >= 300),
]


@dataclass
class BenchState:
    """A small state whose weight is one bytes field, like a paglet carrying a payload."""

    name: str = "bench"
    counter: int = 0
    tags: list[str] = field(default_factory=lambda: ["a", "b"])
    blob: bytes = b""


META = EnvelopeMetadata(
    kind="dispatch",
    agent_id="5f0c4a3e9b2d4c1f8e7a6b5c4d3e2f10",
    agent_class_name="bench:Agent",
    state_class_name="bench_codec:BenchState",
    transfer_id="00112233445566778899aabbccddeeff",
)


def _state_codec() -> tuple[str, Callable[[Any], bytes], Callable[[Any], Any]]:
    try:
        from paglets.serialization.codec import codec_for
    except ImportError:
        encoder = msgspec.msgpack.Encoder()
        decoder = msgspec.msgpack.Decoder(BenchState)
        return "msgspec", encoder.encode, decoder.decode
    codec = codec_for(BenchState)
    return "paglets.serialization.codec", codec.encode, codec.decode


def make_blob(kind: str, size: int) -> bytes:
    rng = random.Random(size)
    if kind == "random":
        return rng.randbytes(size)
    # JSON-like records (repeated keys, small numbers, some random floats); frames compress on their
    # own, so a 1 MiB base tiled to the size behaves like fresh data of the same kind
    lines = []
    total = 0
    i = 0
    while total < min(size, MiB):
        line = (
            f'{{"id": {i}, "name": "user{i % 1000}", "score": {rng.random()}, '
            f'"active": {"true" if i % 3 else "false"}, "tags": ["a", "b"]}}\n'
        )
        lines.append(line)
        total += len(line)
        i += 1
    base = "".join(lines).encode()
    return (base * (size // len(base) + 1))[:size]


def timed(fn: Callable[[], object]) -> float:
    """Median seconds per call of ``fn``."""
    fn()  # warm up (allocator, caches)
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    loops = max(1, int(SAMPLE_SECONDS / once))
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(SAMPLES):
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            samples.append((time.perf_counter() - start) / loops)
    finally:
        gc.enable()
    return statistics.median(samples)


def envelope_chunks(state_bytes: bytes) -> tuple[list[bytes | memoryview], int]:
    encoder = EnvelopeEncoder(META, state_bytes)
    chunks = list(encoder)
    return chunks, encoder.statistics().envelope_bytes


def envelope_decode(envelope: bytes) -> bytearray:
    decoder = EnvelopeDecoder()
    view = memoryview(envelope)
    for start in range(0, len(view), FEED_SLICE):
        decoder.feed(view[start : start + FEED_SLICE])
    state = decoder.finish().state
    assert state is not None
    return state


def run_case(size_name: str, kind: str) -> dict[str, Any]:
    size = SIZES[size_name]
    codec_name, encode, decode = _state_codec()
    state = BenchState(blob=make_blob(kind, size))
    encoded = encode(state)
    pickled = pickle.dumps(state, protocol=5)
    chunks, envelope_size = envelope_chunks(encoded)
    envelope = b"".join(chunks)
    assert decode(bytes(envelope_decode(envelope))) == state
    assert pickle.loads(pickled) == state

    def move_out() -> None:
        list(EnvelopeEncoder(META, encode(state)))

    def move_in() -> None:
        decode(envelope_decode(envelope))

    result = {
        "size": size_name,
        "kind": kind,
        "state_bytes": len(encoded),
        "codec": codec_name,
        "codec_encode": timed(lambda: encode(state)),
        "codec_decode": timed(lambda: decode(encoded)),
        "pickle_dumps": timed(lambda: pickle.dumps(state, protocol=5)),
        "pickle_loads": timed(lambda: pickle.loads(pickled)),
        "envelope_encode": timed(lambda: list(EnvelopeEncoder(META, encoded))),
        "envelope_decode": timed(lambda: envelope_decode(envelope)),
        "move_encode": timed(move_out),
        "move_decode": timed(move_in),
        "envelope_bytes": envelope_size,
        "pickle_bytes": len(pickled),
    }
    return result


def run_isolated(size_name: str, kind: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--case", f"{size_name}:{kind}"],
        capture_output=True,
        text=True,
        timeout=CASE_TIMEOUT,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_case = {(r["size"], r["kind"]): r for r in results}
    summary: dict[str, Any] = {}
    big = by_case.get(("64MiB", "random"))
    if big:
        summary["codec_decode_ratio_64MiB_random"] = big["codec_decode"] / big["pickle_loads"]
        summary["envelope_roundtrip_mbps_64MiB_random"] = _mbps(
            big["state_bytes"], big["envelope_encode"] + big["envelope_decode"]
        )
        summary["envelope_encode_mbps_64MiB_random"] = _mbps(big["state_bytes"], big["envelope_encode"])
        summary["envelope_decode_mbps_64MiB_random"] = _mbps(big["state_bytes"], big["envelope_decode"])
    text = by_case.get(("64MiB", "compressible")) or by_case.get(("1MiB", "compressible"))
    if text:
        summary["compressible_size"] = text["size"]
        summary["compressible_ratio"] = text["state_bytes"] / text["envelope_bytes"]
        summary["compressible_encode_mbps"] = _mbps(text["state_bytes"], text["envelope_encode"])
        summary["compressible_decode_mbps"] = _mbps(text["state_bytes"], text["envelope_decode"])
    return summary


def print_table(results: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    rows = []
    for r in results:
        n = r["state_bytes"]
        case = f"{r['size']} {r['kind']}"
        rows.append(
            [
                case,
                "codec",
                _ms(r["codec_encode"]),
                _ms(r["pickle_dumps"]),
                f"{r['codec_encode'] / r['pickle_dumps']:.2f}",
                _ms(r["codec_decode"]),
                _ms(r["pickle_loads"]),
                f"{r['codec_decode'] / r['pickle_loads']:.2f}",
                f"{_mbps(n, r['codec_encode']):.0f}/{_mbps(n, r['codec_decode']):.0f}",
                f"{n}/{r['pickle_bytes']}",
            ]
        )
        rows.append(
            [
                case,
                "envelope",
                _ms(r["envelope_encode"]),
                "-",
                "-",
                _ms(r["envelope_decode"]),
                "-",
                "-",
                f"{_mbps(n, r['envelope_encode']):.0f}/{_mbps(n, r['envelope_decode']):.0f}",
                f"{r['envelope_bytes']}/-",
            ]
        )
        rows.append(
            [
                case,
                "move",
                _ms(r["move_encode"]),
                _ms(r["pickle_dumps"]),
                f"{r['move_encode'] / r['pickle_dumps']:.2f}",
                _ms(r["move_decode"]),
                _ms(r["pickle_loads"]),
                f"{r['move_decode'] / r['pickle_loads']:.2f}",
                f"{_mbps(n, r['move_encode']):.0f}/{_mbps(n, r['move_decode']):.0f}",
                f"{r['envelope_bytes']}/{r['pickle_bytes']}",
            ]
        )
    headers = [
        "case",
        "path",
        "ours enc ms",
        "pickle enc ms",
        "ratio",
        "ours dec ms",
        "pickle dec ms",
        "ratio",
        "ours MB/s enc/dec",
        "bytes ours/pickle",
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    print(f"state codec and envelope vs pickle protocol 5 (codec: {results[0]['codec']})")
    for line in [headers, *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(line, widths, strict=True)))
    print("ratio = ours / pickle time (below 1: we are faster)")
    for key, value in summary.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    print("targets:")
    for name, key, check in TARGETS:
        if key in summary:
            verdict = "met" if check(summary[key]) else "MISSED"
            print(f"  {verdict:6}  {name}: {summary[key]:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description="state codec + envelope vs pickle 5")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--inline", action="store_true", help="run every case in this process")
    parser.add_argument("--quick", action="store_true", help="skip the 64 MiB cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: size:kind, prints JSON
    args = parser.parse_args()
    if args.case:
        size_name, kind = args.case.split(":")
        print(json.dumps(run_case(size_name, kind)))
        return 0
    sizes = [s for s in SIZES if not (args.quick and s == "64MiB")]
    runner = run_case if args.inline else run_isolated
    results = [runner(size, kind) for size in sizes for kind in KINDS]
    summary = summarize(results)
    if args.json:
        print(json.dumps({"machine": _machine(), "results": results, "summary": summary}, indent=2))
    else:
        print_table(results, summary)
    return 0


def _machine() -> dict[str, Any]:
    import os
    import platform

    import zstandard

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "msgspec": msgspec.__version__,
        "zstd": ".".join(map(str, zstandard.ZSTD_VERSION)),
    }


if __name__ == "__main__":
    sys.exit(main())
