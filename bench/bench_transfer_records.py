"""What does a move's durable bookkeeping cost? ``TransferStore.write`` against the fsync floor, same run.

A move writes two small records (the source's decision, the target's ``executed`` mark) and drops them
later without a sync (``paglets/persistence/_transfers.py``: one 512-byte slot of a preallocated file,
overwritten, then ``fdatasync``). This measures, in the same directory:

- the floor: ``fdatasync`` after appending ~150 bytes to an open file;
- the alternative not taken: one atomic small file (write, ``fdatasync``, rename, directory ``fsync``);
- ``TransferStore.write`` and ``TransferStore.drop`` themselves;
- the floor and the record write again with a pause of ``--pause`` seconds before each (10 ms: a move's
  two writes are milliseconds apart, and on some storage a sync after a quiet moment costs far more
  than one right after another: on this machine's virtual disk, 0.6 ms against 0.04 ms).

    .venv/bin/python bench/bench_transfer_records.py [--count 500] [--dir PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from paglets.persistence._transfers import TransferRecord, TransferStore  # noqa: E402


def _median_ms(step: Callable[[int], object], count: int, pause: float = 0.0) -> float:
    times = []
    for i in range(count):
        if pause:
            time.sleep(pause)
        started = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temporary directory)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--pause", type=float, default=0.01, help="seconds before each spaced write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="paglets-records-") as tmp:
        root = Path(tmp)
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        log = os.open(root / "floor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        payload = b"x" * 150

        def floor(_i: int) -> None:
            os.write(log, payload)
            os.fdatasync(log)

        def atomic(i: int) -> None:
            fd = os.open(f".a{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
            os.write(fd, payload)
            os.fdatasync(fd)
            os.close(fd)
            os.rename(f".a{i}.tmp", f"a{i}", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.fsync(dir_fd)

        store = TransferStore(root)
        store.load()
        records = [
            TransferRecord(
                transfer_id=f"{i:032x}",
                role="source",
                outcome="committed",
                agent_id=f"paglet-{i}",
                peer="http://127.0.0.1:8766",
                written_at=time.time(),
            )
            for i in range(2 * args.count)
        ]
        spaced = max(20, args.count // 5)
        results = {
            "fdatasync_floor_ms": _median_ms(floor, args.count),
            "atomic_small_file_ms": _median_ms(atomic, args.count),
            "record_write_ms": _median_ms(lambda i: store.write(records[i]), args.count),
            "record_drop_ms": _median_ms(lambda i: store.drop(records[i].transfer_id, "source"), args.count),
            "fdatasync_spaced_ms": _median_ms(floor, spaced, args.pause),
            "record_write_spaced_ms": _median_ms(
                lambda i: store.write(records[args.count + i]), spaced, args.pause
            ),
        }
        store.close()
        os.close(log)
        os.close(dir_fd)
    for key, value in results.items():
        print(f"{key:24} {value:8.3f}")
    print(f"{'two writes per move':24} {2 * results['record_write_spaced_ms']:8.3f}  (spaced)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
