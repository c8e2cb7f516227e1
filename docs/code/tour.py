"""A paglet that tours the hosts of an itinerary and takes a note on each one."""

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import MobilityEvent
from paglets.core.itinerary import ItineraryPlan
from paglets.core.messages import Message


# --8<-- [start:state]
@dataclass
class TourState(PagletState):
    itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)  # the route travels with the paglet
    notes: list[str] = field(default_factory=list)
    # --8<-- [end:state]


# --8<-- [start:class]
class Tour(Paglet[TourState]):
    State = TourState
    # --8<-- [end:class]

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "start":
            with self.locked():
                for host in msg.get_arg("route"):  # host names of the mesh (or URLs)
                    self.state.itinerary.add_next_destination(host)
                self.note("leaves")
                proxy = self.state.itinerary.dispatch_next(self)  # the paglet leaves this host here
            # the reply: where the tour ended (the first hop returns once the whole tour is done)
            return None if proxy is None else proxy.to_wire()
        if msg.kind == "notes":
            return list(self.state.notes)
        return self.not_handled()

    def on_arrival(self, event: MobilityEvent) -> None:
        self.note(f"arrived from {event.source_host_name}")

    def run(self) -> None:
        # runs after creation and after every arrival, on a thread of its own
        with self.locked():
            if self.state.itinerary.get_remaining_destination_count() > 0:
                self.note("leaves")
                self.state.itinerary.dispatch_next(self)  # on to the next host

    def note(self, what: str) -> None:
        self.state.notes.append(f"{self.context.name}: {what}")  # context.name: the host it is on
