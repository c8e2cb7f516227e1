"""``PagletProxy``: a handle on a paglet, wherever it lives (docs/implementing/proxies.md).

A proxy names a paglet by host URL and agent id. When it was obtained from a host in this process (or,
inside a paglet process, from that paglet's own host) it carries a *route* to that host and its calls
skip HTTP entirely; otherwise every call is an HTTP request through its ``HostClient``.

A proxy follows its paglet: when the host it names answers that the paglet moved (``PagletMovedError``,
from the forwarding entry the host keeps, docs/guide/asyncio.md), the proxy retries at the new place
and remembers it for later calls (``where()``; ``host_url`` and ``agent_id`` keep the place it was made
for, so proxies compare and hash as before). A request that was answered "moved" was not run, so the
retry never runs anything twice. At most ``MAX_FORWARD_HOPS`` answers are followed per call, then
``ForwardingLimitError``; a paglet that is gone for good is ``InvalidAgentError`` as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar
from urllib.parse import quote

import msgspec

from paglets.core.errors import ForwardingLimitError, InvalidAgentError, PagletError, PagletMovedError
from paglets.core.messages import ONEWAY, FutureReply, Message
from paglets.remote.references import PagletProxyRef
from paglets.remote.transfer import TransferTicket
from paglets.wire.control import (
    ActivateAgent,
    AgentInfo,
    AgentRequest,
    AgentStateInfo,
    CloneAgent,
    DeactivateAgent,
    DeactivatedReply,
    DispatchAgent,
    DisposeAgent,
    ProxyReply,
)

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactRef
    from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
    from paglets.remote.client import HostClient

__all__ = ["MAX_FORWARD_HOPS", "PagletProxy", "ProxyRoute"]

_log = logging.getLogger(__name__)

R = TypeVar("R")

#: The HTTP route of each control operation a proxy runs without an in-process route
#: (``proto/PROTOCOL.md`` §6); the body is the request's fields other than ``agent_id`` (unset ones left out).
_HTTP_ROUTES: Final[dict[type[AgentRequest[Any]], tuple[str, str]]] = {
    AgentInfo: ("GET", ""),
    AgentStateInfo: ("GET", "/state"),
    DispatchAgent: ("POST", "/dispatch"),
    CloneAgent: ("POST", "/clone"),
    DeactivateAgent: ("POST", "/deactivate"),
    ActivateAgent: ("POST", "/activate"),
    DisposeAgent: ("POST", "/dispose"),
}

#: Forwarding answers one call follows before it gives up (``ForwardingLimitError``): a paglet that
#: moves faster than it is followed, or stale entries that point at each other.
MAX_FORWARD_HOPS: Final = 8

#: Threads that run ``send_future`` calls of proxies without an in-process route (HTTP proxies).
FUTURE_WORKERS: Final = 32

#: Seconds a proxy waits for a synchronous send beyond the deadline it gave the host, so that the host's
#: answer (the reply, or ``SendTimeoutError`` naming the paglet and the message) arrives before the
#: proxy's own socket timeout.
REPLY_MARGIN: Final = 5.0

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _future_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(FUTURE_WORKERS, thread_name_prefix="paglets-future")
        return _executor


class ProxyRoute(Protocol):
    """An in-process path to a host: the ``Host`` itself, or a paglet process's link to its host."""

    @property
    def address(self) -> str: ...

    def route_message(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        timeout: float | None,
    ) -> Any: ...

    def route_message_future(
        self, agent_id: str, message: Message, *, activate_if_inactive: bool, no_delay: bool
    ) -> Future[Any]: ...

    def route_call(self, request: AgentRequest[R], timeout: float | None) -> R:
        """Run a control operation on a paglet (info, dispatch, clone, deactivate, activate, dispose)."""
        ...

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """Store a file in this host's artifact store without HTTP."""
        ...

    def delete_artifact(self, artifact: ArtifactRef, *, timeout: float | None = None) -> None: ...


_shared_client_lock = threading.Lock()
_shared_client: HostClient | None = None


def _default_client() -> HostClient:
    global _shared_client
    with _shared_client_lock:
        if _shared_client is None:
            from paglets.remote.client import HostClient

            _shared_client = HostClient()
        return _shared_client


class _Where:
    """Where a proxy's paglet is now (changed when the proxy follows it)."""

    __slots__ = ("agent_id", "host_url", "route")

    def __init__(self, host_url: str, agent_id: str, route: ProxyRoute | None) -> None:
        self.host_url = host_url
        self.agent_id = agent_id
        self.route = route


@dataclass(frozen=True)
class PagletProxy:
    """See the module docstring. ``client`` is used for HTTP calls (a shared default when ``None``)."""

    host_url: str
    agent_id: str
    client: HostClient | None = field(default=None, compare=False, repr=False)
    route: ProxyRoute | None = field(default=None, compare=False, repr=False)
    _moved: list[_Where] = field(default_factory=list, compare=False, repr=False, init=False)

    # --- following --------------------------------------------------------------------------------

    def _at(self) -> _Where:
        moved = self._moved
        return moved[-1] if moved else _Where(self.host_url, self.agent_id, self.route)

    def where(self) -> tuple[str, str]:
        """``(host_url, agent_id)`` of the place this proxy last reached its paglet (where it was made,
        until it followed a move)."""
        at = self._at()
        return at.host_url, at.agent_id

    def _follow(self, call: Callable[[_Where], R]) -> R:
        """Run ``call`` at the paglet's place; on a ``PagletMovedError`` go where it points and retry."""
        hops = 0
        while True:
            at = self._at()
            try:
                return call(at)
            except PagletMovedError as exc:
                if not exc.host_url:
                    raise
                hops += 1
                if hops > MAX_FORWARD_HOPS:
                    raise ForwardingLimitError(
                        f"paglet {self.agent_id}: gave up after {MAX_FORWARD_HOPS} forwarding answers "
                        f"(last: {exc})"
                    ) from exc
                self._go(exc.host_url, exc.moved_agent_id or at.agent_id)

    def _go(self, host_url: str, agent_id: str) -> None:
        url = host_url.rstrip("/")
        route = self.route
        local = route is not None and url == route.address.rstrip("/")
        self._moved[:] = [_Where(url, agent_id, route if local else None)]

    # --- messaging --------------------------------------------------------------------------------

    def _http(self) -> HostClient:
        return self.client if self.client is not None else _default_client()

    def _url(self, suffix: str = "", at: _Where | None = None) -> str:
        at = at or self._at()
        return f"{at.host_url.rstrip('/')}/agents/{quote(at.agent_id, safe='')}{suffix}"

    def send(
        self,
        message: Message,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Deliver ``message`` and wait for the handler's reply (its return value).

        ``timeout``: seconds to wait for the reply, then ``SendTimeoutError`` (the handler may go on). By
        default a proxy from a host in this process (or inside a paglet) uses the host's
        ``send_timeout``, an HTTP proxy its client's timeout (10 s, as in paglets 2.0).
        """

        def call(at: _Where) -> Any:
            if at.route is not None:
                return at.route.route_message(
                    at.agent_id,
                    message,
                    oneway=False,
                    activate_if_inactive=activate_if_inactive,
                    no_delay=no_delay,
                    timeout=timeout,
                )
            client = self._http()
            deadline = timeout if timeout is not None else client.timeout
            reply = client.post_json(
                self._url("/messages", at),
                {
                    "message": message.to_wire(),
                    "oneway": False,
                    "activate_if_inactive": activate_if_inactive,
                    "no_delay": no_delay,
                    "timeout": deadline,
                },
                timeout=deadline + REPLY_MARGIN,
            )
            return reply.get("result") if isinstance(reply, dict) else reply

        return self._follow(call)

    def send_oneway(
        self,
        message: Message,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue ``message``; returns once the host accepted it (the handler runs later)."""
        message.message_type = ONEWAY

        def call(at: _Where) -> None:
            if at.route is not None:
                at.route.route_message(
                    at.agent_id,
                    message,
                    oneway=True,
                    activate_if_inactive=activate_if_inactive,
                    no_delay=no_delay,
                    timeout=timeout if timeout is not None else self._http().timeout,
                )
                return
            self._http().post_json(
                self._url("/messages", at),
                {
                    "message": message.to_wire(),
                    "oneway": True,
                    "activate_if_inactive": activate_if_inactive,
                    "no_delay": no_delay,
                },
                timeout=timeout,
            )

        self._follow(call)

    def send_future(
        self, message: Message, *, activate_if_inactive: bool = True, no_delay: bool = False
    ) -> FutureReply:
        """Deliver ``message`` without waiting; the reply arrives in the returned ``FutureReply``."""
        at = self._at()
        if at.route is None:
            inner = _future_executor().submit(
                self.send, message, activate_if_inactive=activate_if_inactive, no_delay=no_delay
            )
            return FutureReply(inner)
        first = at.route.route_message_future(
            at.agent_id, message, activate_if_inactive=activate_if_inactive, no_delay=no_delay
        )
        outer: Future[Any] = Future()

        def settled(done: Future[Any]) -> None:
            error = done.exception()
            if isinstance(error, PagletMovedError) and error.host_url:  # follow it, off this thread
                self._go(error.host_url, error.moved_agent_id or at.agent_id)
                again = _future_executor().submit(
                    self.send, message, activate_if_inactive=activate_if_inactive, no_delay=no_delay
                )
                again.add_done_callback(lambda f: _copy_outcome(f, outer))
            else:
                _copy_outcome(done, outer)

        first.add_done_callback(settled)
        return FutureReply(outer)

    def send_artifact(
        self,
        message: Message,
        path: str | Path,
        *,
        arg_name: str = "artifact",
        move: bool = False,
        name: str | None = None,
        compression: str = "",
        timeout: float | None = None,
    ) -> Any:
        """Upload ``path`` to the paglet's host as an artifact it owns, send a copy of ``message`` whose
        ``args[arg_name]`` is the ``ArtifactRef`` wire dict, and return the reply. If the send fails (the
        paglet does not exist, the handler raised, ...) the artifact is deleted again; with ``move`` the
        local file is removed after success. A proxy with an in-process route stores the file without
        HTTP."""
        source = Path(path)
        route = self.route
        if route is not None:
            ref = route.upload_artifact(
                source, owner_agent_id=self.agent_id, name=name, compression=compression, timeout=timeout
            )
        else:
            ref = self._http().upload_artifact(
                self.host_url,
                source,
                owner_agent_id=self.agent_id,
                name=name,
                compression=compression,
                timeout=timeout,
            )
        wire = message.to_wire()
        wire["args"] = {**(wire.get("args") or {}), arg_name: ref.to_wire()}
        try:
            result = self.send(Message.from_wire(wire), timeout=timeout)
        except BaseException:
            try:
                if route is not None:
                    route.delete_artifact(ref, timeout=timeout)
                else:
                    self._http().delete_artifact(ref, timeout=timeout)
            except Exception:
                _log.warning(
                    "could not delete artifact %s after a failed send", ref.artifact_id, exc_info=True
                )
            raise
        if move:
            source.unlink(missing_ok=True)
        return result

    # --- control --------------------------------------------------------------------------------------

    def _control(self, build: Callable[[str], AgentRequest[R]], timeout: float | None = None) -> object:
        """Run the request ``build(agent_id)`` through the route, or as the HTTP route of the same
        operation, at the paglet's place (following it)."""

        def call(at: _Where) -> object:
            request = build(at.agent_id)
            if at.route is not None:
                return at.route.route_call(request, timeout)
            method, suffix = _HTTP_ROUTES[type(request)]
            if method == "GET":
                return self._http().get_json(self._url(suffix, at), timeout=timeout)
            body = {
                k: v for k, v in msgspec.structs.asdict(request).items() if k != "agent_id" and v is not None
            }
            return self._http().post_json(self._url(suffix, at), body, timeout=timeout)

        return self._follow(call)

    def _proxy_from(self, reply: object) -> PagletProxy:
        """The proxy of a move's answer: a reply Struct (through a route) or its JSON form (HTTP)."""
        if isinstance(reply, ProxyReply | DeactivatedReply):
            where = reply.proxy
        else:
            data = reply.get("proxy", reply) if isinstance(reply, dict) else None
            if not isinstance(data, dict):
                raise PagletError(f"unexpected reply {reply!r}")
            return PagletProxy.from_wire(data, client=self.client)
        route = self.route
        local = route is not None and where.host_url.rstrip("/") == route.address.rstrip("/")
        return PagletProxy(where.host_url.rstrip("/"), where.agent_id, self.client, route if local else None)

    def dispatch(self, target: str | TransferTicket) -> PagletProxy:
        ticket = TransferTicket.from_target(target)
        timeout = ticket.timeout * (ticket.retries + 1) + 30.0
        wire = ticket.to_wire()
        return self._proxy_from(self._control(lambda a: DispatchAgent(a, ticket=wire), timeout))

    def clone(self, target: str | TransferTicket | None = None) -> PagletProxy:
        ticket = None if target is None else TransferTicket.from_target(target).to_wire()
        return self._proxy_from(self._control(lambda a: CloneAgent(a, ticket=ticket)))

    def deactivate(
        self,
        *,
        reason: str = "deactivate",
        policy: DeactivationPolicy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PagletProxy:
        from paglets.persistence.persistency import DeactivationRequest

        request: DeactivationRequest = DeactivationRequest(
            reason=reason, source="external", policy=policy, metadata=dict(metadata or {})
        )
        wire = request.to_wire()
        return self._proxy_from(self._control(lambda a: DeactivateAgent(a, wire)))

    def activate(self) -> PagletProxy:
        return self._proxy_from(self._control(ActivateAgent))

    def dispose(self) -> None:
        self._control(DisposeAgent)

    # --- introspection ---------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The host's summary of this paglet (``GET /agents/{id}``)."""
        data = self._control(AgentInfo)
        if not isinstance(data, dict):
            data = _as_dict(data)
        return data

    def state(self) -> dict[str, Any]:
        """A fresh snapshot of the paglet's state as its JSON wire dict (``GET /agents/{id}/state``;
        active or inactive)."""
        data = self._control(AgentStateInfo)
        summary = data if isinstance(data, dict) else _as_dict(data)
        if summary.get("state_error"):
            raise PagletError(f"state of {self.agent_id}: {summary['state_error']}")
        state = summary.get("state")
        if not isinstance(state, dict):
            raise PagletError(f"unexpected state {state!r}")
        return state

    def is_valid(self) -> bool:
        try:
            self.info()
        except InvalidAgentError:
            return False
        return True

    def is_active(self) -> bool:
        try:
            return bool(self.info().get("active"))
        except InvalidAgentError:
            return False

    def is_state(self, state: int | bool) -> bool:
        from paglets.core.agent import ACTIVE, INACTIVE

        if isinstance(state, bool):
            return self.is_active() is state
        try:
            active = bool(self.info().get("active"))
        except InvalidAgentError:
            return False
        return bool(state & ACTIVE and active) or bool(state & INACTIVE and not active)

    def is_remote(self, local_host_url: str | None = None) -> bool:
        if local_host_url is None:
            return True
        return self.host_url.rstrip("/") != local_host_url.rstrip("/")

    def get_address(self) -> str:
        return self._at().host_url

    def get_agent_id(self) -> str:
        return self.agent_id

    def get_agent_class_name(self) -> str | None:
        name = self.info().get("class_name")
        return name if isinstance(name, str) else None

    def ref(self) -> PagletProxyRef:
        return PagletProxyRef(self.host_url, self.agent_id)

    def to_wire(self) -> dict[str, str]:
        return {"host_url": self.host_url, "agent_id": self.agent_id}

    @classmethod
    def from_wire(cls, payload: dict[str, Any], client: HostClient | None = None) -> PagletProxy:
        try:
            return cls(str(payload["host_url"]), str(payload["agent_id"]), client)
        except (KeyError, TypeError) as exc:
            raise PagletError(f"not a proxy: {payload!r}") from exc


def _copy_outcome(source: Future[Any], target: Future[Any]) -> None:
    if target.done():
        return
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def _as_dict(reply: object) -> dict[str, Any]:
    """A reply Struct (through a route) as the JSON dict its HTTP route answers."""
    if isinstance(reply, msgspec.Struct):
        data = msgspec.to_builtins(reply)
        if isinstance(data, dict):
            return data
    raise PagletError(f"unexpected reply {reply!r}")
