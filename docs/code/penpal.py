"""Paglets that keep references to each other in their state, across moves."""

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.remote.references import PagletProxyRef


@dataclass
class PenpalState(PagletState):
    friend: PagletProxyRef | None = None  # a reference is a state field like any other
    letters: list[str] = field(default_factory=list)


class Penpal(Paglet[PenpalState]):
    State = PenpalState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "befriend":  # arg: a proxy's wire form {"host_url": ..., "agent_id": ...}
            self.state.friend = PagletProxyRef.from_wire(msg.arg)
            return True
        if msg.kind == "write":
            assert self.state.friend is not None
            friend = self.state.friend.resolve(self.context)  # a PagletProxy
            return friend.send(Message("letter", arg=f"hello from {self.context.name}"))
        if msg.kind == "letter":
            self.state.letters.append(msg.arg)
            return f"{self.context.name} got it"
        if msg.kind == "letters":
            return list(self.state.letters)
        return self.not_handled()
