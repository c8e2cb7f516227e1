"""Paglet classes for the idle passivation tests (importable by name in paglet processes)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import PersistencyEvent
from paglets.core.messages import Message


@dataclass
class LogState(PagletState):
    log: list[int] = field(default_factory=list)
    deactivations: int = 0


class Sleepy(Paglet[LogState]):
    """Passivated after 0.2 s idle; saving it takes 0.3 s, so messages and moves race the passivation."""

    State = LogState
    idle_deactivate_after = 0.2

    def on_deactivating(self, event: PersistencyEvent) -> None:
        self.state.deactivations += 1
        time.sleep(0.3)

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "append":
            self.state.log.append(int(msg.arg))
            return len(self.state.log)
        if msg.kind == "log":
            return list(self.state.log)
        return self.not_handled()


class Wakeful(Sleepy):
    """Never passivated, whatever the host's default."""

    idle_deactivate_after = None


@dataclass
class HolderState(PagletState):
    pass


class Holder(Paglet[HolderState]):
    """Keeps a proxy of another paglet of its host in memory and uses it later (it follows moves)."""

    State = HolderState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "hold":
            self.held = self.context.get_proxy(str(msg.arg))
            return self.held is not None
        if msg.kind == "poke":
            return {"count": self.held.send(Message("add", {"n": 1})), "at": self.held.get_address()}
        return self.not_handled()
