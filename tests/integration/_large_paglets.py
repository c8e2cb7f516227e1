"""Paglets for the large-message tests (importable by name in paglet processes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class DigestState(PagletState):
    seen: list[str] = field(default_factory=list)


class Digester(Paglet[DigestState]):
    """Answers the SHA-256 of the bytes it is sent and remembers every digest, in order."""

    State = DigestState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "digest":
            digest = hashlib.sha256(msg.get_arg("data")).hexdigest()
            with self.locked():
                self.state.seen.append(digest)
            return digest
        if msg.kind == "seen":
            return list(self.state.seen)
        if msg.kind == "pass_on":  # a large message from one paglet to another, through their host
            proxy = self.context.get_proxy(str(msg.get_arg("to")))
            assert proxy is not None
            return proxy.send(Message("digest", {"data": bytes(msg.get_arg("size"))}))
        return self.not_handled()
