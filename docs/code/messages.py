"""Paglets that answer messages: a calculator, and a client paglet that talks to it."""

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class CalculatorState(PagletState):
    total: int = 0
    seen: list[str] = field(default_factory=list)


# --8<-- [start:calculator]
class Calculator(Paglet[CalculatorState]):
    State = CalculatorState

    def handle_message(self, msg: Message) -> Any:
        self.state.seen.append(msg.kind)
        if msg.kind == "add":  # named arguments: Message("add", {"n": 2})
            self.state.total += msg.get_arg("n", 1)
            return self.state.total
        if msg.kind == "sum":  # one unnamed argument: Message("sum", arg=[1, 2, 3])
            return sum(msg.get_arg())
        if msg.kind == "echo":  # bytes stay bytes, lists stay lists
            return msg.arg
        if msg.kind == "ping":
            return f"pong from {self.context.name}"
        if msg.kind == "seen":
            return list(self.state.seen)
        return self.not_handled()  # the sender gets NotHandledError


# --8<-- [end:calculator]


# --8<-- [start:asker]
@dataclass
class AskerState(PagletState):
    pass


class Asker(Paglet[AskerState]):
    """Asks another paglet of the mesh, by agent id (and host URL when it lives elsewhere)."""

    State = AskerState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "ask":
            target, host_url = msg.get_arg("agent_id"), msg.get_arg("host_url")
            reply = self.send(target, Message("add", {"n": 10}), host_url=host_url)
            return f"{self.context.name} asked and got {reply}"
        return self.not_handled()


# --8<-- [end:asker]
