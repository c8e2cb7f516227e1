"""The paglet class of ``bench_scale.py``'s 1,000-paglet row (importable by name in paglet processes)."""

from __future__ import annotations

from typing import Any

from paglets.core.agent import Paglet
from paglets.core.messages import Message


class Echo(Paglet[Any]):
    """Answers ``ping`` with ``pong``; holds no state."""

    def handle_message(self, msg: Message) -> Any:
        return "pong" if msg.kind == "ping" else None
