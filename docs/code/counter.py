from dataclasses import dataclass, field

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class CounterState(PagletState):
    count: int = 0
    log: list[str] = field(default_factory=list)


class Counter(Paglet[CounterState]):
    State = CounterState

    def handle_message(self, msg: Message):
        if msg.kind == "add":
            self.state.count += msg.get_arg("n", 1)
            return self.state.count
        return self.not_handled()
