"""Message patterns: a future reply, a ReplySet collecting several answers as they come, and a
multicast to every paglet of a host.

    python demos/message_patterns.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message, ReplySet


@dataclass
class EchoState(PagletState):
    name: str = ""


class Echo(Paglet[EchoState]):
    State = EchoState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "echo":
            return f"{message.arg}:{self.state.name}"
        if message.kind == "slow":
            time.sleep(float(message.get_arg("seconds", 0.0)))  # stands for work that takes a while
            return f"{self.state.name} after {message.get_arg('seconds')}s"
        if message.kind == "ping":
            return f"pong from {self.state.name}"
        return self.not_handled()


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha") as (alpha,):
        future = alpha.create(Echo, EchoState("future"))
        reply = future.send_future(Message("echo", arg="one"))
        print(f"future: {reply.get_reply(timeout=10)}")

        workers = [alpha.create(Echo, EchoState(name)) for name in ("slow", "medium", "fast")]
        replies = ReplySet()
        for worker, seconds in zip(workers, (0.3, 0.15, 0.0), strict=True):
            replies.add_future_reply(worker.send_future(Message("slow", {"seconds": seconds})))
        print("reply set (in the order the answers came):")
        while replies.has_more_future_replies():
            answer = replies.get_next_future_reply(timeout=10)
            if answer is None:
                break
            print(f"- {answer.get_reply()}")

        print("multicast:")
        for answer in sorted(str(r.get_reply(timeout=10)) for r in alpha.multicast_message("ping")):
            print(f"- {answer}")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("message_patterns")
