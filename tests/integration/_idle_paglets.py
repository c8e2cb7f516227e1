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
