"""The host's control plane: one table ``{request type: handler}`` for every control operation.

Requests are the typed Structs of ``paglets.wire.control``. The same table serves:

- paglet processes: a controller decodes a ``HostCall`` frame's request and calls :meth:`ControlTable.serve`
  with itself as the caller (``PagletCaller``), then encodes the reply into the ``HostReply``;
- HTTP routes of the same operation (``paglets.runtime._routes``): the route decodes its JSON body,
  builds the request and calls :meth:`ControlTable.call` without a caller;
- proxies in the host's process (``Host.route_call``): the proxy's request, without a caller.

Handlers are registered by the operation groups (``paglets.runtime._agent_ops`` for the operations any
caller may ask, ``paglets.runtime._paglet_ops`` for a paglet's host calls) with :meth:`ControlTable.on`,
whose signature makes mypy check that a handler returns the reply type its request declares. A host
serves every request type of ``paglets.wire.control`` (a test checks the table is complete).

Who calls decides only two things: a paglet's requests carry its identity (``caller``), which the
operations on the calling paglet need and which no other caller can claim, and a message a paglet sends
is checked by the host (an HTTP route checked its message while decoding the JSON body).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar, cast

from paglets.core.errors import HostError, InvalidAgentError, PagletMovedError
from paglets.wire.control import CONTROL_REQUEST_TYPES, ControlRequest, Request, StateSegment

if TYPE_CHECKING:
    from paglets.runtime._controller import Snapshot, Status
    from paglets.services.contracts import ServiceRecord

__all__ = ["Caller", "ControlTable", "PagletCaller", "paglet_caller"]

R = TypeVar("R")
Q = TypeVar("Q", bound=Request[Any])


class PagletCaller(Protocol):
    """The paglet whose process sent a request (its ``PagletController``)."""

    agent_id: str
    agent_class: str
    #: Services the paglet advertised while a move that is not committed yet prepared it here.
    held_services: list[ServiceRecord]

    @property
    def status(self) -> Status: ...

    def sent_state(self, ref: StateSegment) -> Snapshot:
        """The state the paglet sent ahead of its request (closed by whoever uses it)."""
        ...


#: Who asked: a paglet process, or ``None`` for the host's own callers (HTTP routes, in-process proxies).
Caller: TypeAlias = PagletCaller | None

_Handler: TypeAlias = Callable[[Any, Caller], Awaitable[object]]


def paglet_caller(caller: Caller, request: Request[Any]) -> PagletCaller:
    """The calling paglet of a request only a paglet may make (``HostError`` for anyone else)."""
    if caller is None:
        raise HostError(f"only a paglet process may ask {type(request).__name__}")
    return caller


class ControlTable:
    """See the module docstring."""

    def __init__(self) -> None:
        self._handlers: dict[type[Request[Any]], _Handler] = {}
        #: Where a paglet that is not here went (``paglets.runtime._forwarding``), if it left with an entry.
        self.moved: Callable[[str], PagletMovedError | None] | None = None

    def on(self, cls: type[Request[R]], handler: Callable[[Q, Caller], Awaitable[R]]) -> None:
        """Serve ``cls`` requests with ``handler``; a type has exactly one handler."""
        if cls in self._handlers:
            raise ValueError(f"{cls.__name__} has a handler already")
        self._handlers[cls] = handler

    async def call(self, request: Request[R], caller: Caller = None) -> R:
        """Run ``request`` and return its reply (or raise the operation's error)."""
        handler = self._handlers.get(type(request))
        if handler is None:
            raise HostError(f"this host does not offer {type(request).__name__}")
        try:
            return cast(R, await handler(request, caller))
        except InvalidAgentError as exc:
            # "no such paglet" raised here (not by a handler in a paglet) for a paglet that left: say where
            agent_id = getattr(request, "agent_id", None)
            if type(exc) is InvalidAgentError and exc.remote_type is None and isinstance(agent_id, str):
                moved = self.moved(agent_id) if self.moved is not None else None
                if moved is not None:
                    raise moved from None
            raise

    async def serve(self, caller: PagletCaller, request: ControlRequest) -> object:
        """A paglet's host call (the ``HostCalls`` of its controller)."""
        return await self.call(request, caller)

    def missing(self) -> list[str]:
        """Request types of ``paglets.wire.control`` without a handler (empty for a whole host)."""
        return [cls.__name__ for cls in CONTROL_REQUEST_TYPES if cls not in self._handlers]

    def handler(self, cls: type[Request[Any]]) -> _Handler | None:
        return self._handlers.get(cls)
