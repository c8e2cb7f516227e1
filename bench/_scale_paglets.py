"""The paglet class of ``bench_scale.py``'s 1,000-paglet row (importable by name in paglet processes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class EchoState(PagletState):
    pass


class Echo(Paglet[EchoState]):
    """Answers ``ping`` with ``pong``; holds no state."""

    State = EchoState

    def handle_message(self, msg: Message) -> Any:
        return "pong" if msg.kind == "ping" else None
