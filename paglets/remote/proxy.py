"""``PagletProxy``: a handle on a paglet, wherever it lives (docs/implementing/proxies.md).

A proxy names a paglet by host URL and agent id. When it was obtained from a host in this process (or,
inside a paglet process, from that paglet's own host) it carries a *route* to that host and its calls
skip HTTP entirely; otherwise every call is an HTTP request through its ``HostClient``. A proxy does not
follow a paglet that moves: use the proxy the move returned.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import quote

from paglets.core.errors import InvalidAgentError, PagletError
from paglets.core.messages import ONEWAY, FutureReply, Message
from paglets.remote.client import HostClient
from paglets.remote.references import PagletProxyRef
from paglets.remote.transfer import TransferTicket

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactRef
    from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest

__all__ = ["PagletProxy", "ProxyRoute"]

_log = logging.getLogger(__name__)

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

    def route_call(self, agent_id: str, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        """Run control operation ``op`` (info, dispatch, clone, deactivate, activate, dispose)."""
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
            _shared_client = HostClient()
        return _shared_client


@dataclass(frozen=True)
class PagletProxy:
    """See the module docstring. ``client`` is used for HTTP calls (a shared default when ``None``)."""

    host_url: str
    agent_id: str
    client: HostClient | None = field(default=None, compare=False, repr=False)
    route: ProxyRoute | None = field(default=None, compare=False, repr=False)

    # --- messaging --------------------------------------------------------------------------------

    def _http(self) -> HostClient:
        return self.client if self.client is not None else _default_client()

    def _url(self, suffix: str = "") -> str:
        return f"{self.host_url.rstrip('/')}/agents/{quote(self.agent_id, safe='')}{suffix}"

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
        if self.route is not None:
            return self.route.route_message(
                self.agent_id,
                message,
                oneway=False,
                activate_if_inactive=activate_if_inactive,
                no_delay=no_delay,
                timeout=timeout,
            )
        client = self._http()
        deadline = timeout if timeout is not None else client.timeout
        reply = client.post_json(
            self._url("/messages"),
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
        if self.route is not None:
            self.route.route_message(
                self.agent_id,
                message,
                oneway=True,
                activate_if_inactive=activate_if_inactive,
                no_delay=no_delay,
                timeout=timeout if timeout is not None else self._http().timeout,
            )
            return
        self._http().post_json(
            self._url("/messages"),
            {
                "message": message.to_wire(),
                "oneway": True,
                "activate_if_inactive": activate_if_inactive,
                "no_delay": no_delay,
            },
            timeout=timeout,
        )

    def send_future(
        self, message: Message, *, activate_if_inactive: bool = True, no_delay: bool = False
    ) -> FutureReply:
        """Deliver ``message`` without waiting; the reply arrives in the returned ``FutureReply``."""
        if self.route is not None:
            inner = self.route.route_message_future(
                self.agent_id, message, activate_if_inactive=activate_if_inactive, no_delay=no_delay
            )
        else:
            inner = _future_executor().submit(
                self.send, message, activate_if_inactive=activate_if_inactive, no_delay=no_delay
            )
        return FutureReply(inner)

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

    def _control(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        if self.route is not None:
            return self.route.route_call(self.agent_id, op, args, timeout)
        if op == "info":
            return self._http().get_json(self._url(), timeout=timeout)
        return self._http().post_json(self._url(f"/{op}"), args, timeout=timeout)

    def _proxy_from(self, reply: Any) -> PagletProxy:
        if isinstance(reply, PagletProxy):
            return reply
        data = reply.get("proxy", reply) if isinstance(reply, dict) else None
        if not isinstance(data, dict):
            raise PagletError(f"unexpected reply {reply!r}")
        return PagletProxy.from_wire(data, client=self.client)

    def dispatch(self, target: str | TransferTicket) -> PagletProxy:
        ticket = TransferTicket.from_target(target)
        timeout = ticket.timeout * (ticket.retries + 1) + 30.0
        return self._proxy_from(self._control("dispatch", {"ticket": ticket.to_wire()}, timeout))

    def clone(self, target: str | TransferTicket | None = None) -> PagletProxy:
        args: dict[str, Any] = {"target": None}
        if target is not None:
            args = {"ticket": TransferTicket.from_target(target).to_wire()}
        return self._proxy_from(self._control("clone", args))

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
        return self._proxy_from(self._control("deactivate", {"request": request.to_wire()}))

    def activate(self) -> PagletProxy:
        return self._proxy_from(self._control("activate", {}))

    def dispose(self) -> None:
        self._control("dispose", {})

    # --- introspection ---------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The host's summary of this paglet (``GET /agents/{id}``)."""
        data = self._control("info", {})
        if not isinstance(data, dict):
            raise PagletError(f"unexpected reply {data!r}")
        return data

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
        return self.host_url

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
