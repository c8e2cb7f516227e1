"""Paglet classes for the checkpoint tests (importable by name in paglet processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import PersistencyEvent
from paglets.core.messages import Message


@dataclass
class TallyState(PagletState):
    count: int = 0
    blob: bytes = b""
    activations: list[str] = field(default_factory=list)


class Tally(Paglet[TallyState]):
    """Counts ``add`` messages; no checkpoint policy of its own (the host's default applies)."""

    State = TallyState

    def on_activation(self, event: PersistencyEvent) -> None:
        reason = event.request.reason if event.request is not None else ""
        self.state.activations.append(reason)

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "add":
            self.state.count += int(msg.arg)
            return self.state.count
        if msg.kind == "count":
            return self.state.count
        if msg.kind == "activations":
            return list(self.state.activations)
        if msg.kind == "grow":
            self.state.blob = os.urandom(int(msg.arg))  # incompressible
            return len(self.state.blob)
        return self.not_handled()


class Periodic(Tally):
    """Checkpointed every 0.2 s by its class."""

    checkpoint_every = 0.2


class Never(Tally):
    """Never checkpointed periodically, whatever the host's default."""

    checkpoint_every = None
