"""A paglet that fails in every way a paglet can, to show what its callers see."""

import os
import threading
from dataclasses import dataclass
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import ServiceNotFoundError
from paglets.core.messages import Message


@dataclass
class FragileState(PagletState):
    fail_in_run: bool = False


class Fragile(Paglet[FragileState]):
    State = FragileState

    def run(self) -> None:
        if self.state.fail_in_run:
            raise RuntimeError("run() gave up")  # the paglet is reported crashed

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "bug":
            return {}["missing"]  # an ordinary exception: the paglet lives on
        if msg.kind == "lookup":
            raise ServiceNotFoundError("no printer in this mesh")  # a paglets error keeps its class
        if msg.kind == "slow":
            threading.Event().wait(msg.arg)  # longer than the caller wants to wait
            return "finally"
        if msg.kind == "exit":
            os._exit(3)  # the process ends: the paglet crashed
        if msg.kind == "ok":
            return "still here"
        return self.not_handled()
