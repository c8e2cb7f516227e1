"""Master and slave: a master paglet creates a slave on another host; the slave walks an itinerary,
reports what it sees on every host to the master, and disposes itself at the end.

    python demos/master_slave.py
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.itinerary import ItineraryPlan
from paglets.core.messages import Message


@dataclass
class MasterState(PagletState):
    observations: list[str] = field(default_factory=list)
    finished: bool = False


class Master(Paglet[MasterState]):
    State = MasterState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "start":
            route = [str(h) for h in message.get_arg("route", [])]
            state = SlaveState(master_id=self.agent_id, master_url=self.context.address)
            state.itinerary.destinations.extend(route[1:])
            first = self.context.host_status(route[0])
            slave = self.context.create_paglet(Slave, state, host_url=first.url)
            return slave.to_wire()
        if message.kind == "observe":
            self.state.observations.append(str(message.arg))
            return True
        if message.kind == "done":
            self.state.finished = True
            return True
        if message.kind == "report":
            return {"finished": self.state.finished, "observations": list(self.state.observations)}
        return self.not_handled()


@dataclass
class SlaveState(PagletState):
    master_id: str = ""
    master_url: str = ""
    itinerary: ItineraryPlan = field(default_factory=ItineraryPlan)


class Slave(Paglet[SlaveState]):
    State = SlaveState

    def run(self) -> None:
        seen = f"{self.context.name}: process {os.getpid()}, {len(self.context.get_proxies())} paglet(s) here"
        self.send(self.state.master_id, Message("observe", arg=seen), host_url=self.state.master_url)
        if self.state.itinerary.dispatch_next(self) is None:  # the route is done
            self.send(self.state.master_id, Message("done"), host_url=self.state.master_url)
            host: Any = self.context.host
            host.dispose(self.agent_id)


def main(argv: list[str] | None = None) -> int:
    from demos.support import local_hosts, parser

    parser(__doc__).parse_args(argv)
    with local_hosts("alpha", "beta", "gamma") as (alpha, _beta, _gamma):
        master = alpha.create(Master)
        master.send(Message("start", {"route": ["beta", "gamma", "alpha", "beta"]}))
        deadline = time.monotonic() + 30
        report = master.send(Message("report"))
        while not report["finished"] and time.monotonic() < deadline:
            time.sleep(0.05)  # the slave reports on its own schedule
            report = master.send(Message("report"))
        print("observations:")
        for line in report["observations"]:
            print(f"- {line}")
        print(f"slave finished: {report['finished']}")
    return 0


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from demos.support import run

    run("master_slave")
