"""Clone workers: a paglet splits a list of numbers, clones itself to beta with one half, keeps the
other half, and both sum their part where they are.

    python demos/clone_workers.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class WorkerState(PagletState):
    numbers: list[int] = field(default_factory=list)
    label: str = "original"


class SumWorker(Paglet[WorkerState]):
    State = WorkerState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "split":
            numbers = list(self.state.numbers)
            middle = len(numbers) // 2
            # The clone is made from the state as it is now: give it the left half.
            self.state.numbers, self.state.label = numbers[:middle], "left-clone"
            clone = self.clone(str(message.arg))
            self.state.numbers, self.state.label = numbers[middle:], "right-original"
            return clone.to_wire()
        if message.kind == "sum":
            return {"label": self.state.label, "host": self.context.name, "total": sum(self.state.numbers)}
        return self.not_handled()


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser
    from paglets.remote.proxy import PagletProxy

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha", "beta") as (alpha, _beta):
        original = alpha.create(SumWorker, WorkerState(list(range(1, 11))))
        clone = PagletProxy.from_wire(original.send(Message("split", arg="beta")))
        mine = original.send(Message("sum"))
        theirs = clone.send(Message("sum"))
        print(f"original on {mine['host']}: {mine['label']} -> {mine['total']}")
        print(f"clone on {theirs['host']}: {theirs['label']} -> {theirs['total']}")
        print(f"combined result: {mine['total'] + theirs['total']}")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("clone_workers")
