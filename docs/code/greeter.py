"""The paglet of the auto-update walkthrough (docs/auto-update.md): its reply says which code runs."""

from dataclasses import dataclass

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class GreeterState(PagletState):
    greetings: int = 0


class Greeter(Paglet[GreeterState]):
    State = GreeterState

    def handle_message(self, msg: Message) -> object:
        if msg.kind == "hello":
            self.state.greetings += 1
            return f"Hello from v1 (greeting #{self.state.greetings})"
        return None
