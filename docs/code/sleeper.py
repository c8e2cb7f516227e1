"""A paglet that is saved to disk and comes back: deactivation, policies, queued messages."""

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import PersistencyEvent
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest


@dataclass
class SleeperState(PagletState):
    log: list[str] = field(default_factory=list)


class Sleeper(Paglet[SleeperState]):
    State = SleeperState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "note":
            self.state.log.append(f"note {msg.arg}")
            return len(self.state.log)
        if msg.kind == "log":
            return list(self.state.log)
        # --8<-- [start:self]
        if msg.kind == "nap":  # deactivate itself; back in the given number of seconds
            return self.deactivate(reason="nap", policy=DeactivationPolicy.after(msg.arg)).to_wire()
        # --8<-- [end:self]
        return self.not_handled()

    # --8<-- [start:hooks]
    def deactivation_policy(self, request: DeactivationRequest) -> DeactivationPolicy:
        # The paglet has the last word on how it comes back; here: keep what the caller asked for.
        return request.policy or DeactivationPolicy()

    def on_deactivating(self, event: PersistencyEvent) -> None:
        self.state.log.append(f"saved ({event.reason}, asked by {event.request.source})")

    def on_activation(self, event: PersistencyEvent) -> None:
        self.state.log.append("back")

    # --8<-- [end:hooks]
