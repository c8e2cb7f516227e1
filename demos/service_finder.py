"""Service finder: a paglet advertises a mesh-wide service wherever it is; other hosts find it by name,
also after it moved, and no longer once it is disposed. (A host keeps the answers of other hosts to a
mesh lookup for two seconds, so each lookup here is made from a host that has not asked yet.)

    python demos/service_finder.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent, MobilityEvent
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope


@dataclass
class PrinterState(PagletState):
    printed: int = 0


class Printer(Paglet[PrinterState]):
    """Offers the ``printer`` service on whichever host it runs (a record belongs to its host, so it
    advertises again after every arrival). The hooks finish before ``create`` and ``dispatch`` return,
    so the service is there as soon as the caller goes on."""

    State = PrinterState

    def _advertise(self) -> None:
        self.advertise_service("printer", capabilities=["print"], scope=ServiceScope.MESH)

    def on_creation(self, event: CreationEvent) -> None:
        self._advertise()

    def on_arrival(self, event: MobilityEvent) -> None:
        self._advertise()

    def handle_message(self, message: Message) -> Any:
        if message.kind == "print":
            self.state.printed += 1
            return f"printed {message.arg!r} on {self.context.name}"
        return self.not_handled()


def lookup(host: Any) -> str:
    record = host.lookup_service("printer", capability="print", scope=ServiceScope.MESH)
    return "None" if record is None else f"{record.host_name} {record.proxy.to_wire()}"


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha", "beta", "gamma") as (alpha, beta, gamma):
        printer = alpha.create(Printer)
        print(f"initial lookup (from gamma): {lookup(gamma)}")
        moved = alpha.dispatch(printer.agent_id, "beta")
        print(f"after dispatch (from alpha): {lookup(alpha)}")
        record = alpha.lookup_service("printer", scope=ServiceScope.MESH)
        print(f"calling it: {record.proxy.resolve(alpha.client).send(Message('print', arg='hello'))}")
        moved.dispose()
        print(f"after dispose (from beta):   {lookup(beta)}")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("service_finder")
