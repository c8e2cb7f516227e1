"""Paglets that speak typed operations: a message's kind names a ``ServiceOperation``, its arguments are
the operation's request dataclass, the reply is its reply dataclass.

An :class:`OperationPaglet` lists its operations in ``Operations`` and maps them to handlers in
:meth:`OperationPaglet.operation_handlers`; the request is decoded before the handler runs and the reply
encoded after it. Messages of other kinds go to :meth:`OperationPaglet.handle_operation_message`.
:class:`OperationClient` calls such a paglet through a proxy and returns typed replies.

::

    ADD = ServiceOperation("add", AddRequest, AddReply)

    class Adder(OperationPaglet[AdderState]):
        State = AdderState
        Operations = (ADD,)

        def operation_handlers(self):
            return {ADD: self.add}

        def add(self, request: AddRequest) -> AddReply:
            return AddReply(request.a + request.b)

    reply = OperationClient(proxy).call(ADD, AddRequest(1, 2))   # AddReply(total=3)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import ServiceContractError
from paglets.core.messages import Message
from paglets.remote.proxy import PagletProxy
from paglets.services.contracts import ServiceOperation

__all__ = ["OperationClient", "OperationPaglet"]

StateT = TypeVar("StateT", bound=PagletState)
ReqT = TypeVar("ReqT")
RepT = TypeVar("RepT")


class OperationPaglet(Paglet[StateT], Generic[StateT]):
    """A paglet whose messages are typed operations (see the module docstring)."""

    Operations: ClassVar[tuple[ServiceOperation[Any, Any], ...]] = ()

    def handle_message(self, message: Message) -> Any:
        operation = self.operation_for_message(message)
        if operation is not None:
            return self.dispatch_operation(operation, message)
        reply = self.handle_operation_message(message)
        return self.not_handled() if reply is None else reply

    def operation_handlers(self) -> Mapping[ServiceOperation[Any, Any], Callable[[Any], Any]]:
        """Operation → handler taking the decoded request and returning the reply (or None)."""
        return {}

    def handle_operation_message(self, message: Message) -> Any | None:
        """Messages that name no operation; None means not handled."""
        return None

    def operation_for_message(self, message: Message) -> ServiceOperation[Any, Any] | None:
        """The operation named by ``message.kind`` (from ``Operations`` first, then the handlers)."""
        for operation in self.Operations:
            if operation.name == message.kind:
                return operation
        for operation in self.operation_handlers():
            if operation.name == message.kind:
                return operation
        return None

    def dispatch_operation(self, operation: ServiceOperation[Any, Any], message: Message) -> dict[str, Any]:
        handler = self.operation_handlers().get(operation)
        if handler is None:
            raise ServiceContractError(
                f"no handler for operation {operation.name!r} in {type(self).__name__}"
            )
        return operation.encode_reply(handler(operation.decode_request(message)))


@dataclass(slots=True)
class OperationClient:
    """Typed calls to an :class:`OperationPaglet` (or any paglet answering operations) through ``proxy``."""

    proxy: PagletProxy

    def call(
        self,
        operation: ServiceOperation[ReqT, RepT],
        request: ReqT | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> RepT:
        reply = self.proxy.send(
            operation.to_message(request),
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=timeout,
        )
        return operation.decode_reply(reply)

    def send_oneway(
        self,
        operation: ServiceOperation[ReqT, Any],
        request: ReqT | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.proxy.send_oneway(
            operation.to_message(request),
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=timeout,
        )
