"""A paglet that writes down every hook the runtime calls, with the event it got."""

from dataclasses import dataclass, field

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CloneEvent, CreationEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import Message


@dataclass
class DiaryState(PagletState):
    entries: list[str] = field(default_factory=list)


class Diary(Paglet[DiaryState]):
    State = DiaryState

    def write(self, text: str) -> None:
        with self.locked():  # run() has its own thread: take the paglet's lock to touch state
            self.state.entries.append(text)

    # --8<-- [start:hooks]
    def on_creation(self, event: CreationEvent) -> None:
        self.write(f"on_creation     on {event.host_name}: init={event.init!r}")

    def run(self) -> None:
        self.write(f"run             on {self.context.name}")

    def on_dispatching(self, event: MobilityEvent) -> None:
        self.write(f"on_dispatching  on {event.host_name}: {self.move(event)}")

    def on_arrival(self, event: MobilityEvent) -> None:
        self.write(f"on_arrival      on {event.host_name}: {self.move(event)}")

    def on_reverting(self, event: MobilityEvent) -> None:
        self.write(f"on_reverting    on {event.host_name}: {self.move(event)}")

    def on_cloning(self, event: CloneEvent) -> None:
        self.write(f"on_cloning      on {event.host_name}: {self.copy(event)}")

    def on_clone(self, event: CloneEvent) -> None:
        self.write(f"on_clone        on {event.host_name}: {self.copy(event)}")

    def on_cloned(self, event: CloneEvent) -> None:
        self.write(f"on_cloned       on {event.host_name}: {self.copy(event)}")

    def on_deactivating(self, event: PersistencyEvent) -> None:
        self.write(f"on_deactivating on {event.host_name}: reason={event.reason!r}")

    def on_activation(self, event: PersistencyEvent) -> None:
        self.write(f"on_activation   on {event.host_name}: reason={event.reason!r}")

    def on_disposing(self, event: PersistencyEvent) -> None:
        # the state is discarded after this hook: leave a note where the host keeps it
        self.context.set_property("diary-last-words", f"on_disposing    on {event.host_name}")

    # --8<-- [end:hooks]

    def move(self, event: MobilityEvent) -> str:
        return f"{event.source_host_name} -> {event.target_host_name} ({event.reason})"

    def copy(self, event: CloneEvent) -> str:
        who = "I am the clone" if event.clone_agent_id == self.agent_id else "I am the original"
        return f"{event.source_host_name} -> {event.target_host_name}, {who}"

    def handle_message(self, msg: Message) -> list[str]:
        if msg.kind == "diary":
            return list(self.state.entries)
        return self.not_handled()
