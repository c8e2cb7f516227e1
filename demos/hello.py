"""Hello, paglets: the two smallest paglets (after the "FirstAglet" and "VanillaAglet" of Java Aglets).

``FirstPaglet`` answers a greeting from its own process; ``VanillaPaglet`` is dispatched from alpha to
beta and says where it came from.

    python demos/hello.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import MobilityEvent
from paglets.core.messages import Message


@dataclass
class FirstState(PagletState):
    pass


class FirstPaglet(Paglet[FirstState]):
    State = FirstState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "hello":
            return f"Hello World! I am {self.agent_id[:8]} on {self.context.name} (process {os.getpid()})"
        return self.not_handled()


@dataclass
class VanillaState(PagletState):
    came_from: str = ""


class VanillaPaglet(Paglet[VanillaState]):
    State = VanillaState

    def on_arrival(self, event: MobilityEvent) -> None:
        self.state.came_from = event.source_host_name

    def handle_message(self, message: Message) -> Any:
        if message.kind == "hello":
            return f"Hello from {self.context.name}, I came from {self.state.came_from}"
        return self.not_handled()


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha", "beta") as (alpha, _beta):
        first = alpha.create(FirstPaglet)
        print(first.send(Message("hello")))
        vanilla = alpha.dispatch(alpha.create(VanillaPaglet).agent_id, "beta")
        print(vanilla.send(Message("hello")))
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("hello")
