"""A paglet for the movement crash tests: ``run()`` leaves a mark on disk on every host it runs on.

The mark (``<marks>/<agent id>.<hop>.<host name>``, written before ``run()`` returns) is the evidence a
test needs after a SIGKILL: the paglet really ran on that host for that hop, whatever its host's fate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class HopState(PagletState):
    marks: str = ""
    hops: int = 0
    payload: bytes = b""
    notes: list[str] = field(default_factory=list)


class Hopper(Paglet[HopState]):
    State = HopState

    def run(self) -> None:
        with self.locked():
            self.state.hops += 1
            hop = self.state.hops
        if self.state.marks:
            name = f"{self.context.agent_id}.{hop}.{self.context.name}"
            fd = os.open(os.path.join(self.state.marks, name), os.O_WRONLY | os.O_CREAT, 0o644)
            os.close(fd)

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "hops":
            return self.state.hops
        if msg.kind == "note":
            with self.locked():
                self.state.notes.append(str(msg.arg))
            return None
        if msg.kind == "notes":
            return list(self.state.notes)
        return self.not_handled()
