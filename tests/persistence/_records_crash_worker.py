"""Crash-test worker: random record-store operations in a loop, each announced and acknowledged.

Run as ``python _records_crash_worker.py ROOT SEED ROUND``. It opens the durable store under ROOT, prints
``READY``, then forever: picks an operation, prints ``B <op> ...`` (begin), performs it and prints ``A``
(acknowledged: the operation is durable). Every line is flushed at once, so when the test kills the
process with SIGKILL, everything printed before the kill is in the pipe. Operations:

- ``B W <id> <token> <keep 0|1> <inline tokens, comma separated or ->`` — write a record whose state
  is ``make_state(token)``, with the given inline messages, keeping the old queue or not;
- ``B Q <id> <token>`` — append a message carrying ``token``;
- ``B D <id>`` — delete the record;
- ``B R <id>`` — activate like a host: read the whole record, check it, then delete it.

A state is ``<token>|<filler>|<sha256 of token and filler>``: the test checks it without sharing code.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from paglets.persistence._records import RecordStore, StoredMessage, StoredRecord  # noqa: E402

IDS = ["p0", "p1", "p2", "p3", "svc:x"]


def make_state(token: str) -> bytes:
    rng = random.Random(token)
    roll = rng.random()
    if roll < 0.7:
        size = rng.randrange(0, 4000)
    elif roll < 0.9:
        size = rng.randrange(20_000, 200_000)
    else:
        size = rng.randrange(1_000_000, 3_000_000)  # slow enough to be killed in the middle
    filler = rng.randbytes(size) if rng.random() < 0.5 else (token.encode() * (size // len(token) + 1))[:size]
    head = token.encode() + b"|" + filler + b"|"
    return head + hashlib.sha256(head).hexdigest().encode()


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    root, seed, round_number = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed * 1000 + round_number)
    store = RecordStore(root)  # durable
    store.load()
    say("READY")
    n = 0
    while True:
        n += 1
        token = f"r{round_number}n{n}"
        agent_id = rng.choice(IDS)
        op = "W" if agent_id not in store else rng.choices("WQDR", weights=(35, 45, 10, 10))[0]
        if op == "W":
            keep = rng.random() < 0.3
            inline = [f"{token}i{i}" for i in range(rng.choice((0, 0, 1, 2)))]
            say(f"B W {agent_id} {token} {int(keep)} {','.join(inline) or '-'}")
            record = StoredRecord(
                agent_id=agent_id,
                agent_class="crash:Agent",
                state_class="crash:State",
                state=make_state(token),
                policy={"activate_on_startup": rng.random() < 0.5},
                queued_messages=[StoredMessage(message={"kind": "m", "args": {"tok": t}}) for t in inline],
            )
            store.write(record, keep_messages=keep)
        elif op == "Q":
            say(f"B Q {agent_id} {token}")
            store.append_message(agent_id, {"kind": "m", "args": {"tok": token}}, oneway=True)
        elif op == "D":
            say(f"B D {agent_id}")
            store.delete(agent_id)
        else:
            say(f"B R {agent_id}")
            record = store.read(agent_id)
            assert bytes(record.state).split(b"|", 1)[0], "state without a token"
            store.delete(agent_id)
        say("A")


if __name__ == "__main__":
    main()
