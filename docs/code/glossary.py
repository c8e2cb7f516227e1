"""A typed service: a glossary that defines words, and a paglet that looks it up across the mesh."""

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent
from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec


# --8<-- [start:contract]
@dataclass
class DefineRequest:  # request and reply types: module-level dataclasses, importable everywhere
    word: str = ""


@dataclass
class DefineReply:
    word: str = ""
    meaning: str = ""
    host: str = ""


DEFINE = ServiceOperation("define", DefineRequest, DefineReply)
GLOSSARY = ServiceContract("glossary", (DEFINE,), version="1")
# --8<-- [end:contract]


@dataclass
class GlossaryState(PagletState):
    words: dict[str, str] = field(
        default_factory=lambda: {"paglet": "a mobile Python agent", "host": "a process that runs paglets"}
    )


# --8<-- [start:service]
class Glossary(Paglet[GlossaryState]):
    State = GlossaryState
    # When a launch.toml names this class, its host keeps the service available (started on first use).
    RESIDENT_SERVICES = (
        ResidentServiceSpec(
            contract=GLOSSARY,
            scope=ServiceScope.MESH,
            lifecycle=ResidentLifecycle.LAZY,
            agent_id="service.glossary",
        ),
    )

    def on_creation(self, event: CreationEvent) -> None:
        # Created by hand (not as a resident service): advertise the contract to the whole mesh.
        if self.agent_id != "service.glossary":
            self.advertise_contract(GLOSSARY, scope=ServiceScope.MESH)

    def handle_message(self, msg: Message) -> Any:
        return GLOSSARY.route(msg, {DEFINE: self.define}, default=self.not_handled())

    def define(self, request: DefineRequest) -> DefineReply:
        meaning = self.state.words.get(request.word, "(unknown)")
        return DefineReply(word=request.word, meaning=meaning, host=self.context.name)


# --8<-- [end:service]


@dataclass
class ReaderState(PagletState):
    pass


# --8<-- [start:client]
class Reader(Paglet[ReaderState]):
    """Finds a glossary anywhere in the mesh and asks it; knows neither its host nor its agent id."""

    State = ReaderState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "define":
            glossary = self.require_contract(GLOSSARY, scope=ServiceScope.MESH)  # a ServiceHandle
            reply = glossary.call(DEFINE, DefineRequest(word=msg.arg))  # a DefineReply
            return f"{reply.word}: {reply.meaning} (answered on {reply.host})"
        if msg.kind == "clock":
            ref = self.lookup_service("clock", scope=ServiceScope.MESH)  # a PagletProxyRef, or None
            return None if ref is None else ref.resolve(self.context).send(Message("now"))
        return self.not_handled()


# --8<-- [end:client]


@dataclass
class ClockState(PagletState):
    ticks: int = 0


# --8<-- [start:plain]
class Clock(Paglet[ClockState]):
    """A plain named service: a name and capabilities, no typed operations."""

    State = ClockState

    def on_creation(self, event: CreationEvent) -> None:
        self.advertise_service("clock", capabilities=["now"], scope=ServiceScope.MESH)

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "now":
            self.state.ticks += 1
            return f"tick {self.state.ticks} on {self.context.name}"
        return self.not_handled()


# --8<-- [end:plain]
