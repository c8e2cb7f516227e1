"""Creating paglets: checking classes, encoding initial states, creating here or on another host.

A creation names its paglet class and state class by qualified name (``module:QualName``): paglet
processes import classes by name, so both must be importable (never from ``__main__``). The initial
state is encoded once, by the caller (``Host.create`` in the user's thread, a paglet process in its
own), or decoded from its wire dict for an HTTP creation (every key must be a field of the state
dataclass). :class:`Creator` then starts the paglet on this host through the ``PagletManager``, or asks
another host's ``POST /agents`` (the JSON form, state as a wire dict).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from paglets.core.agent import Paglet
from paglets.core.errors import HostError, RequestError, SerializationError
from paglets.serialization._from_wire import unknown_wire_fields
from paglets.serialization.codec import (
    codec_for,
    dataclass_from_wire,
    dataclass_to_wire,
    qualified_name,
    resolve_qualified_name,
)
from paglets.wire.control import CreateAgent, ProxyRef, ProxyReply

if TYPE_CHECKING:
    from paglets.remote.client import HostClient

__all__ = [
    "Creator",
    "check_class_names",
    "check_paglet_class",
    "creation_of",
    "decode_creation_state",
    "encode_state",
]


def check_paglet_class(agent_cls: object) -> tuple[str, str]:
    """The qualified names of a paglet class and its state class, after checking both can be imported."""
    if not isinstance(agent_cls, type) or not issubclass(agent_cls, Paglet):
        raise HostError(f"{agent_cls!r} is not a Paglet subclass")
    if agent_cls.__module__ == "__main__":
        raise HostError(
            f"{agent_cls.__qualname__} is defined in __main__; paglet processes import classes by name, "
            "so move it into a module (e.g. mypaglets.py) and import it from there"
        )
    try:
        agent_name = qualified_name(agent_cls)
    except SerializationError as exc:
        raise HostError(f"{agent_cls.__qualname__}: {exc}") from exc
    state_cls = agent_cls.state_class()
    try:
        state_name = qualified_name(state_cls)
    except SerializationError as exc:
        raise HostError(f"{state_cls.__qualname__}: {exc}") from exc
    if state_cls.__module__ == "__main__":
        raise HostError(f"{state_cls.__qualname__} is defined in __main__; move it into an importable module")
    return agent_name, state_name


def check_class_names(agent_class: str, state_class: str) -> tuple[str, str]:
    """Resolve and check a creation request's class names (an unknown class is a 400 with the reason)."""
    agent_name, state_name = check_paglet_class(resolve_qualified_name(agent_class))
    if state_class and state_class != state_name:
        state_cls = resolve_qualified_name(state_class)
        if qualified_name(state_cls) != state_name:
            raise HostError(f"{agent_name} has state class {state_name}, not {state_class}")
    return agent_name, state_name


def encode_state(agent_cls: type[Paglet[Any]], state: object) -> bytes | None:
    """A paglet's initial state, encoded (``None``: the state class's defaults)."""
    if state is None:
        return None
    state_cls = agent_cls.state_class()
    if not isinstance(state, state_cls):
        raise HostError(
            f"state for {agent_cls.__qualname__} must be a {state_cls.__qualname__}, got {state!r}"
        )
    return codec_for(state_cls).encode(state)


def creation_of(
    agent_cls: type[Paglet[Any]], state: object, init: object, agent_id: str | None
) -> CreateAgent:
    """The creation request of a paglet class with an initial state (``None``: its defaults)."""
    agent_name, state_name = check_paglet_class(agent_cls)
    return CreateAgent(agent_name, state_name, encode_state(agent_cls, state), init, agent_id)


def decode_creation_state(state_class: str, state: object) -> bytes | None:
    """Binary state for a creation whose state arrived as a wire dict (HTTP, ``launch.toml``)."""
    if state is None:
        return None
    cls = resolve_qualified_name(state_class)
    if not isinstance(state, dict):
        raise SerializationError(f"state for {state_class} must be an object")
    unknown = unknown_wire_fields(cls, state)
    if unknown:
        names = ", ".join(repr(f"state.{path}") for path in unknown)
        raise RequestError(f"invalid request: unknown field {names} ({cls.__qualname__} has no such field)")
    return codec_for(cls).encode(dataclass_from_wire(cls, state))


def remote_creation_body(creation: CreateAgent) -> dict[str, object]:
    """The JSON body of another host's ``POST /agents`` for ``creation`` (state as a wire dict)."""
    state: object = None
    if creation.state is not None:
        state_cls = resolve_qualified_name(creation.state_class)
        state = dataclass_to_wire(codec_for(state_cls).decode(creation.state))
    return {
        "agent_class_name": creation.agent_class,
        "state_class_name": creation.state_class,
        "state": state,
        "init": creation.init,
        "agent_id": creation.agent_id,
    }


class Agents(Protocol):
    """Where paglets start (``PagletManager.create``)."""

    async def create(
        self,
        *,
        agent_class: str,
        state_class: str,
        state: bytes | None,
        init: object = None,
        agent_id: str | None = None,
        exists: Callable[[str], bool] = ...,
    ) -> str: ...


class Creator:
    """Creations on this host and on others (see the module docstring). ``create`` runs on the event
    loop; ``create_remote`` too, with the HTTP request in a worker thread."""

    def __init__(
        self, *, address: Callable[[], str], agents: Agents, stored: Callable[[str], bool], client: HostClient
    ) -> None:
        self._address = address
        self._agents = agents
        self._stored = stored
        self._client = client

    async def create(self, creation: CreateAgent) -> ProxyRef:
        """Start ``creation`` here; returns once ``on_creation`` ran. An id that an inactive paglet has is
        refused like an active one's."""
        agent_id = await self._agents.create(
            agent_class=creation.agent_class,
            state_class=creation.state_class,
            state=creation.state,
            init=creation.init,
            agent_id=creation.agent_id,
            exists=self._stored,
        )
        return ProxyRef(self._address(), agent_id)

    def same_host(self, url: str) -> bool:
        return url.rstrip("/") == self._address().rstrip("/")

    async def create_remote(self, url: str, creation: CreateAgent) -> ProxyRef:
        """Start ``creation`` on the host at ``url`` (this host's own URL creates here)."""
        if self.same_host(url):
            return await self.create(creation)
        body = remote_creation_body(creation)
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, lambda: self._client.post_json(url + "/agents", body))
        return _proxy_of(reply)

    def create_remote_blocking(self, url: str, creation: CreateAgent) -> ProxyRef:
        """``create_remote`` to another host from a user thread."""
        return _proxy_of(self._client.post_json(url + "/agents", remote_creation_body(creation)))


def _proxy_of(reply: object) -> ProxyRef:
    try:
        return msgspec.convert(reply, ProxyReply).proxy
    except msgspec.ValidationError as exc:
        raise HostError(f"unexpected answer to a creation: {exc}") from None
