"""Mobility events: every lifecycle hook a paglet sees when it is created, dispatched to another host
and retracted back, recorded in its state and printed in order.

    python demos/mobility_events.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent, MobilityEvent
from paglets.core.messages import Message


@dataclass
class HistoryState(PagletState):
    history: list[str] = field(default_factory=list)


class Historian(Paglet[HistoryState]):
    State = HistoryState

    def on_creation(self, event: CreationEvent) -> None:
        self.state.history.append(f"on_creation on {event.host_name}")

    def on_dispatching(self, event: MobilityEvent) -> None:
        self.state.history.append(f"on_dispatching {event.source_host_name} -> {event.target_host_name}")

    def on_arrival(self, event: MobilityEvent) -> None:
        self.state.history.append(
            f"on_arrival on {event.host_name} from {event.source_host_name} ({event.reason})"
        )

    def on_reverting(self, event: MobilityEvent) -> None:
        self.state.history.append(f"on_reverting {event.source_host_name} -> {event.target_host_name}")

    def run(self) -> None:
        with self.locked_state() as state:
            state.history.append(f"run on {self.context.name}")

    def handle_message(self, message: Message) -> Any:
        if message.kind == "history":
            return list(self.state.history)
        return self.not_handled()


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha", "beta") as (alpha, beta):
        paglet = alpha.create(Historian)
        moved = alpha.dispatch(paglet.agent_id, "beta")
        print(f"dispatched to {beta.name}: {moved.host_url}")
        back = alpha.retract(beta.address, paglet.agent_id)
        print(f"retracted to {alpha.name}: {back.host_url}")
        print("history:")
        for line in back.send(Message("history")):
            print(f"- {line}")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("mobility_events")
