"""Demo paglets. They live in an importable module because paglet processes import classes by name."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent, MobilityEvent
from paglets.core.itinerary import ItineraryPlan
from paglets.core.messages import Message


@dataclass
class TallyState(PagletState):
    total: int = 0
    history: list[str] = field(default_factory=list)


class Tally(Paglet[TallyState]):
    """Adds numbers, remembers what happened to it, and can be asked to crash."""

    State = TallyState

    def on_creation(self, event: CreationEvent) -> None:
        self.state.history.append(f"created on {event.host_name} with init={event.init!r}")

    def run(self) -> None:
        with self.locked():
            self.state.history.append(f"run() started in process {os.getpid()}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "add":
            self.state.total += int(msg.get_arg("n", 1))
            return self.state.total
        if msg.kind == "whoami":
            return {"agent_id": self.agent_id, "pid": os.getpid(), "host": self.context.name}
        if msg.kind == "crash":
            os._exit(13)
        return self.not_handled()


@dataclass
class TravellerState(PagletState):
    itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)
    hops: list[str] = field(default_factory=list)
    departed_at: float = 0.0
    payload: bytes = b""


class Traveller(Paglet[TravellerState]):
    """Walks an itinerary of host names from its ``run()``, recording each hop and how long it took."""

    State = TravellerState

    def on_dispatching(self, event: MobilityEvent) -> None:
        self.state.departed_at = time.time()

    def on_arrival(self, event: MobilityEvent) -> None:
        took_ms = (time.time() - self.state.departed_at) * 1000
        self.state.hops.append(f"{event.source_host_name} -> {event.host_name}: {took_ms:.1f} ms")

    def run(self) -> None:
        with self.locked():
            plan = self.state.itinerary
            if plan.get_remaining_destination_count() == 0:
                return
        plan.dispatch_next(self)

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "start":
            with self.locked():
                for name in msg.arg:
                    self.state.itinerary.add_next_destination(str(name))
                proxy = self.state.itinerary.dispatch_next(self)
            return None if proxy is None else proxy.to_wire()
        if msg.kind == "hops":
            return list(self.state.hops)
        return self.not_handled()
