"""The paglet that ``bench_attack.py`` attacks: it answers ``ping`` and can be made to block for good."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class TargetState(PagletState):
    count: int = 0


class Target(Paglet[TargetState]):
    State = TargetState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "ping":
            self.state.count += 1
            return "pong"
        if msg.kind == "block":
            threading.Event().wait()  # a handler that never returns
        return self.not_handled()
