"""Does a move ever duplicate or lose a paglet when the target host is killed at random moments?

Two host processes move one paglet (``tests/integration/_move_paglets.Hopper``, 16 MiB of random state by
default) back and forth; in about half of the rounds the target process is SIGKILLed at a random moment
within the first ``--kill-window`` seconds of the move, then restarted on the same port and directory.
After each round the paglet's copies are counted once its transfer settled. Counts:

- ``duplicates``: two running copies (must be 0);
- ``losses``: no copy left; ``losses_outside_case`` those where the target had not executed the move
  (must be 0: a paglet is lost only with the host that alone held it, here the target after executing);
- ``success_for_lost``: a caller told success for a paglet that never ran on the target (must be 0);
- ``failure_but_moved``: a caller told failure although the paglet moved (must be 0).

    .venv/bin/python bench/bench_move_faults.py [--rounds 400] [--payload-mib 16] [--seed 1] [--json out.json]

Same scenario as ``tests/integration/test_move_crash.py::test_soak_moves_with_target_kills`` (which runs
a bounded version in CI).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from test_move_crash import soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--payload-mib", type=float, default=16.0)
    parser.add_argument("--kill-window", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ticket-timeout", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="paglets-move-faults-") as tmp:
        counts = soak(
            Path(tmp),
            args.rounds,
            seed=args.seed,
            payload=int(args.payload_mib * (1 << 20)),
            kill_window=args.kill_window,
            deadline=float("inf"),
            ticket_timeout=args.ticket_timeout,
        )
    elapsed = time.monotonic() - started
    shown = f"{args.rounds} rounds, {args.payload_mib:g} MiB state, kill window {args.kill_window:g} s"
    print(f"{shown}: {elapsed:.0f} s")
    for key, value in counts.items():
        print(f"  {key:22} {value}")
    ok = all(
        counts[k] == 0 for k in ("duplicates", "losses_outside_case", "success_for_lost", "failure_but_moved")
    )
    print("OK" if ok else "FAILED")
    if args.json is not None:
        args.json.write_text(json.dumps({"elapsed_s": elapsed, **counts}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
