"""Paglets used by the compatibility scenarios.

Written against the paglets 2.0 authoring API only (no name that 2.0 lacks), so that the same module
runs on our runtime and on the reference. Every hook appends to ``state.log``; ``handle_message`` answers
a few probe kinds that report what the authoring API returns *inside* a paglet process.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapes import error_name, shape

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class LogState(PagletState):
    log: list[str] = field(default_factory=list)
    #: a service name to advertise from every starting hook (creation, arrival, clone, activation)
    advertise: str = ""
    #: a hook name ("creation", "arrival", ...) that raises after advertising
    fail_in: str = ""
    note: str = ""


class Recorder(Paglet[LogState]):
    """Logs every hook; answers probes."""

    State = LogState

    def _note(self, entry: str) -> None:
        with self.locked():
            self.state.log.append(entry)

    def _starting(self, hook: str, entry: str) -> None:
        self._note(entry)
        if self.state.advertise:
            self.advertise_service(self.state.advertise, capabilities=["ping"])
        if self.state.fail_in == hook:
            raise RuntimeError(f"{hook} failed on purpose")

    def on_creation(self, event: Any) -> None:
        self._starting("creation", f"creation:{event.host_name}:{event.init}")

    def on_arrival(self, event: Any) -> None:
        self._starting("arrival", f"arrival:{event.host_name}:{event.reason}")

    def on_clone(self, event: Any) -> None:
        self._starting("clone", f"clone:{event.host_name}")

    def on_activation(self, event: Any) -> None:
        self._starting("activation", f"activation:{event.reason}")

    def on_dispatching(self, event: Any) -> None:
        self._note(f"dispatching:{event.reason}")

    def on_reverting(self, event: Any) -> None:
        self._note(f"reverting:{event.reason}")

    def on_cloning(self, event: Any) -> None:
        self._note("cloning")

    def on_cloned(self, event: Any) -> None:
        self._note("cloned")

    def on_deactivating(self, event: Any) -> None:
        self._note(f"deactivating:{event.reason}")

    def on_disposing(self, event: Any) -> None:
        self._note("disposing")

    def run(self) -> None:
        self._note(f"run:{self.context.name}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "log":
            with self.locked():
                return list(self.state.log)
        if msg.kind == "echo":
            return {"args": msg.args, "arg": msg.arg}
        if msg.kind == "raise_runtime":
            raise RuntimeError("handler failed")
        if msg.kind == "raise_value":
            raise ValueError("handler value error")
        if msg.kind == "exit":
            sys.stdout.flush()
            os._exit(3)
        if msg.kind == "probe":
            return probe_inside(self)
        if msg.kind == "self_deactivate":
            return self.deactivate(reason="self").to_wire()
        if msg.kind == "self_dispatch":
            return self.dispatch(str(msg.args["target"])).to_wire()
        if msg.kind == "self_clone":
            return self.clone(str(msg.args["target"])).to_wire()
        return self.not_handled()


class Broken(Paglet[LogState]):
    """A paglet whose ``run()`` raises."""

    State = LogState

    def run(self) -> None:
        raise RuntimeError("run failed on purpose")


def _try(out: dict[str, Any], key: str, fn: Any) -> Any:
    try:
        value = fn()
    except BaseException as exc:  # the class name is the observation
        out[key] = f"error:{error_name(exc)}"
        return None
    out[key] = shape(value)
    return value


def probe_inside(paglet: Recorder) -> dict[str, Any]:
    """What the authoring API returns inside a paglet process (type shapes and error classes)."""
    ctx = paglet.context
    out: dict[str, Any] = {}
    _try(out, "context.name", lambda: ctx.name)
    _try(out, "context.address", lambda: ctx.address)
    _try(out, "context.agent_id", lambda: ctx.agent_id)
    _try(out, "context.available_hosts()", ctx.available_hosts)
    _try(out, "context.host_status(self)", lambda: ctx.host_status(ctx.name))
    _try(out, "context.host_status(unknown)", lambda: ctx.host_status("no-such-host"))
    _try(out, "context.is_host_online(self)", lambda: ctx.is_host_online(ctx.name))
    _try(out, "context.wait_for_host(self)", lambda: ctx.wait_for_host(ctx.name, timeout=2.0))
    _try(out, "context.get_proxy(self)", lambda: ctx.get_proxy(paglet.agent_id))
    _try(out, "context.get_proxy(unknown)", lambda: ctx.get_proxy("0" * 32))
    _try(out, "context.get_proxies()", ctx.get_proxies)
    _try(out, "context.get_property(missing)", lambda: ctx.get_property("missing"))
    _try(out, "context.set_property()", lambda: ctx.set_property("compat", "x"))
    _try(out, "context.get_property(set)", lambda: ctx.get_property("compat"))
    _try(out, "context.host.list_agents()", lambda: ctx.host.list_agents())
    _try(out, "context.host.health()", lambda: ctx.host.health())
    _try(out, "context.host.mesh.code_version", lambda: ctx.host.mesh.code_version)
    _try(out, "context.host.client", lambda: ctx.host.client)
    _try(out, "context.host.name", lambda: ctx.host.name)
    _try(out, "self.advertise_service()", lambda: paglet.advertise_service("probe-svc", capabilities=["a"]))
    _try(out, "self.lookup_service()", lambda: paglet.lookup_service("probe-svc"))
    _try(out, "self.lookup_service(missing)", lambda: paglet.lookup_service("missing-svc"))
    _try(out, "self.lookup_services()", lambda: paglet.lookup_services("probe-svc"))
    _try(out, "self.unadvertise_service()", lambda: paglet.unadvertise_service("probe-svc"))
    _try(out, "self.work_dir()", paglet.work_dir)
    storage = _try(out, "self.persistent_storage()", paglet.persistent_storage)
    if storage is not None:
        _try(out, "storage.write_bytes()", lambda: storage.write_bytes("a.bin", b"x"))
        _try(out, "storage.read_bytes()", lambda: storage.read_bytes("a.bin"))
        _try(out, "storage.status()", storage.status)
        _try(out, "storage.read_bytes(escape)", lambda: storage.read_bytes("../../x"))
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as handle:
        handle.write(b"compat")
    source = Path(handle.name)
    try:
        _try(out, "self.register_file()", lambda: paglet.register_file(source, name="f.txt"))
        _try(out, "self.registered_files()", paglet.registered_files)
        _try(out, "self.file_path()", lambda: paglet.file_path("f.txt"))
        _try(out, "self.unregister_file()", lambda: paglet.unregister_file("f.txt"))
        _try(out, "self.file_path(missing)", lambda: paglet.file_path("f.txt"))
    finally:
        source.unlink(missing_ok=True)
    _try(out, "self.resources.status()", paglet.resources.status)
    _try(out, "self.wait_message(0.01)", lambda: paglet.wait_message(0.01))
    _try(out, "self.send(unknown)", lambda: paglet.send("0" * 32, Message("x")))
    _try(out, "self.dispatch(other id)", lambda: ctx.dispatch("0" * 32, ctx.address))
    _try(out, "self.multicast()", lambda: paglet.multicast("log", include_self=False))
    return out
