"""Paglets used by the bench scenarios; written against the paglets 2.0 authoring API only, so the same
file runs on our runtime and on the reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class BenchState(PagletState):
    count: int = 0
    payload: bytes = b""
    notes: list[str] = field(default_factory=list)


class BenchPaglet(Paglet[BenchState]):
    State = BenchState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "add":
            self.state.count += 1
            return self.state.count
        if msg.kind == "count":
            return self.state.count
        return self.not_handled()
