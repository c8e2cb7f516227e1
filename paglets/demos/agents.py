"""Demo paglets. They live in an importable module because paglet processes import classes by name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent
from paglets.core.messages import Message


@dataclass
class TallyState(PagletState):
    total: int = 0
    history: list[str] = field(default_factory=list)


class Tally(Paglet[TallyState]):
    """Adds numbers, remembers what happened to it, and can be asked to crash."""

    State = TallyState

    def on_creation(self, event: CreationEvent) -> None:
        self.state.history.append(f"created on {event.host_name} with init={event.init!r}")

    def run(self) -> None:
        with self.locked():
            self.state.history.append(f"run() started in process {os.getpid()}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "add":
            self.state.total += int(msg.get_arg("n", 1))
            return self.state.total
        if msg.kind == "whoami":
            return {"agent_id": self.agent_id, "pid": os.getpid(), "host": self.context.name}
        if msg.kind == "crash":
            os._exit(13)
        return self.not_handled()
