"""Paglets for the compatibility tests (importable by name in paglet processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.services.contracts import ServiceContract, ServiceOperation


@dataclass
class PingRequest:
    text: str = ""


@dataclass
class PingReply:
    text: str = ""


PING: ServiceOperation[PingRequest, PingReply] = ServiceOperation("ping", PingRequest, PingReply)
PING_CONTRACT = ServiceContract("compat-ping", (PING,))


@dataclass
class StartState(PagletState):
    log: list[str] = field(default_factory=list)
    #: advertised from every starting hook (creation, arrival, clone, activation)
    service: str = ""
    #: advertise ``PING_CONTRACT`` from every starting hook
    contract: bool = False
    #: the starting hook that raises (after advertising)
    fail_in: str = ""
    #: host name on which the failing hook raises ("" = everywhere)
    fail_on_host: str = ""
    #: in ``on_arrival``, log which hosts a mesh lookup of ``service`` finds (``service`` is then
    #: advertised with mesh scope)
    probe_lookup: bool = False


class Starter(Paglet[StartState]):
    """Logs every hook (``run()`` first of all); advertises from its starting hooks when told to."""

    State = StartState

    def _starting(self, hook: str, entry: str) -> None:
        with self.locked():
            self.state.log.append(entry)
        if self.state.service:
            from paglets.core.runtime_values import ServiceScope

            scope = ServiceScope.MESH if self.state.probe_lookup else ServiceScope.LOCAL
            self.advertise_service(self.state.service, capabilities=["ping"], scope=scope)
        if self.state.contract:
            self.advertise_contract(PING_CONTRACT)
        if self.state.fail_in == hook and self.state.fail_on_host in ("", self.context.name):
            raise RuntimeError(f"{hook} fails on purpose")

    def on_creation(self, event: Any) -> None:
        self._starting("creation", f"created:{event.host_name}")

    def on_arrival(self, event: Any) -> None:
        self._starting("arrival", f"arrived:{event.host_name}")
        if self.state.probe_lookup:
            from paglets.core.runtime_values import ServiceScope

            found = self.lookup_services(self.state.service, scope=ServiceScope.MESH)
            with self.locked():
                self.state.log.append(f"lookup-in-arrival:{sorted(r.host_name for r in found)}")

    def on_clone(self, event: Any) -> None:
        self._starting("clone", f"clone:{event.host_name}")

    def on_activation(self, event: Any) -> None:
        self._starting("activation", f"activated:{event.reason}")

    def run(self) -> None:
        with self.locked():
            self.state.log.append(f"run:{self.context.name}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "log":
            with self.locked():
                return list(self.state.log)
        if msg.kind == "ping":
            return PING_CONTRACT.route(msg, {PING: lambda request: PingReply(request.text)})
        if msg.kind == "mesh_types":
            return mesh_types(self)
        if msg.kind == "hold":
            self.resources.register(str(msg.arg), lambda: None, suppress=bool(msg.get_arg("suppress")))
            return self.resources.status()
        if msg.kind == "storage_read":
            try:
                return self.persistent_storage().read_bytes(str(msg.arg))
            except Exception as exc:
                return type(exc).__name__
        if msg.kind == "exit":
            import os

            os._exit(int(msg.arg))
        return self.not_handled()


def mesh_types(paglet: Paglet[Any]) -> dict[str, Any]:
    """What the mesh queries return inside a paglet: class names, and the names of the hosts."""
    ctx = paglet.context
    hosts = ctx.available_hosts()
    status = ctx.host_status(ctx.name)
    waited = ctx.wait_for_host(ctx.name, timeout=5.0)
    mesh = ctx.host.mesh
    return {
        "available_hosts": sorted({type(h).__name__ for h in hosts}),
        "available_host_names": sorted(h.name for h in hosts),
        "host_status": type(status).__name__,
        "host_status_url": status.url if status is not None else None,
        "unknown_host_status": repr(ctx.host_status("no-such-host-in-this-mesh")),
        "wait_for_host": type(waited).__name__,
        "mesh.hosts": sorted({type(h).__name__ for h in mesh.hosts()}),
        "mesh.lookup": type(mesh.lookup(ctx.name)).__name__,
        "mesh.is_online": mesh.is_online(ctx.name),
        "mesh.code_version": mesh.code_version,
        "mesh.resolve_url": mesh.resolve_url(ctx.name),
    }
