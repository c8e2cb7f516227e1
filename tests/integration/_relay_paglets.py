"""Paglets for the relay tests (imported by hosts started in ``tests/integration``)."""

from __future__ import annotations

from typing import Any

from _paglets import EmptyState

from paglets.core.agent import Paglet
from paglets.core.messages import Message
from paglets.remote.references import PagletProxyRef


class Caller(Paglet[EmptyState]):
    """Sends ``add`` to a paglet on another host, from inside its own process."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "call":
            ref = PagletProxyRef(str(msg.get_arg("url")), str(msg.get_arg("id")))
            return ref.resolve(self.context).send(Message("add", {"n": 1}))
        return self.not_handled()
