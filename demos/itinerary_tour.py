"""Itinerary tour: a paglet follows a task itinerary alpha -> beta -> alpha -> beta, running the tasks
planned for each destination (on arrival, before leaving) and a default task everywhere.

    python demos/itinerary_tour.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import MobilityEvent
from paglets.core.itinerary import (
    EXECUTE_ON_ARRIVAL,
    EXECUTE_ON_DEFAULT,
    EXECUTE_ON_DISPATCH,
    ItineraryAgentMixin,
    ItineraryTask,
    TaskItineraryPlan,
)
from paglets.core.messages import Message


@dataclass
class TourState(PagletState):
    itinerary: TaskItineraryPlan = field(default_factory=TaskItineraryPlan)
    route: list[str] = field(default_factory=list)
    report: list[str] = field(default_factory=list)
    touring: bool = False


class Tourist(ItineraryAgentMixin, Paglet[TourState]):
    State = TourState

    def run(self) -> None:
        if self.state.touring:  # arrived at the next destination: work here, then move on
            self._visit()
            self.go_to_next_destination()  # None once the tour is done: it stays here

    def _visit(self) -> None:
        self.state.route.append(self.context.name)
        self.execute_itinerary_tasks(EXECUTE_ON_ARRIVAL)

    def on_dispatching(self, event: MobilityEvent) -> None:
        self.execute_itinerary_tasks(EXECUTE_ON_DISPATCH)

    def execute_itinerary_task(self, task: ItineraryTask, phase: str, event: Any = None) -> Any:
        line = f"task:{phase}:{task.name}:{task.args.get('text', self.context.name)}"
        self.state.report.append(line)
        return line

    def handle_message(self, message: Message) -> Any:
        if message.kind == "tour":
            # Start here; the answer is the proxy of where the tour ends (each move waits for the next).
            self.state.touring = True
            self._visit()
            moved = self.go_to_next_destination()
            return moved.to_wire() if moved is not None else None
        if message.kind == "report":
            return {
                "host": self.context.name,
                "route": list(self.state.route),
                "report": list(self.state.report),
            }
        return self.not_handled()


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser
    from paglets.remote.proxy import PagletProxy

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha", "beta") as (alpha, _beta):
        plan = TaskItineraryPlan()
        plan.add_default_task(ItineraryTask("visit", EXECUTE_ON_DEFAULT))
        plan.add_next_destination_with_task(
            "beta", ItineraryTask("note", EXECUTE_ON_ARRIVAL, {"text": "first visit"})
        )
        plan.add_next_destination_with_task(
            "alpha", ItineraryTask("note", EXECUTE_ON_ARRIVAL, {"text": "back home"})
        )
        plan.add_next_destination("beta")
        # A destination's dispatch tasks run when the paglet leaves for it.
        plan.add_task_for_destination(
            "alpha", ItineraryTask("pack", EXECUTE_ON_DISPATCH, {"text": "heading home"})
        )
        tourist = alpha.create(Tourist, TourState(itinerary=plan))
        final = PagletProxy.from_wire(tourist.send(Message("tour")), alpha.client)
        report = final.send(Message("report"))
        print(f"final host: {report['host']}")
        print("route:")
        for host in report["route"]:
            print(f"- {host}")
        print("report:")
        for line in report["report"]:
            print(f"- {line}")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("itinerary_tour")
