"""Paglet classes used by the integration tests (importable by name in paglet processes)."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent
from paglets.core.messages import Message
from paglets.remote.transfer import TransferTicket


@dataclass
class CounterState(PagletState):
    count: int = 0
    log: list[str] = field(default_factory=list)
    blob: bytes = b""


class Counter(Paglet[CounterState]):
    State = CounterState

    def on_creation(self, event: CreationEvent) -> None:
        self.state.log.append(f"created:{event.host_name}:{event.init}")

    def run(self) -> None:
        with self.locked():
            self.state.log.append(f"run:{self.context.name}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "add":
            self.state.count += msg.get_arg("n", 1)
            return self.state.count
        if msg.kind == "echo":
            return {"args": msg.args, "arg": msg.arg}
        if msg.kind == "pid":
            return os.getpid()
        if msg.kind == "fail":
            raise RuntimeError("boom: " + str(msg.arg))
        if msg.kind == "exit":
            sys.exit(int(msg.arg))
        if msg.kind == "hard_exit":
            os._exit(int(msg.arg))
        if msg.kind == "log":
            return list(self.state.log)
        if msg.kind == "block":
            gate = threading.Event()
            gate.wait(float(msg.arg))
            return "unblocked"
        return self.not_handled()


@dataclass
class GateState(PagletState):
    log: list[str] = field(default_factory=list)


class Gated(Paglet[GateState]):
    """Records messages; ``wait_file`` blocks its handler until a file exists (at most 20 s)."""

    State = GateState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "wait_file":
            with self.locked():
                self.state.log.append("begin")
            path = str(msg.arg)
            gate = threading.Event()
            for _ in range(2000):
                if os.path.exists(path):
                    break
                gate.wait(0.01)
            with self.locked():
                self.state.log.append("end")
            return "opened"
        if msg.kind == "rec":
            with self.locked():
                self.state.log.append(str(msg.arg))
            return len(self.state.log)
        return self.not_handled()


@dataclass
class EmptyState(PagletState):
    note: str = ""


class RunFails(Paglet[EmptyState]):
    State = EmptyState

    def run(self) -> None:
        raise ValueError("run exploded")

    def handle_message(self, msg: Message) -> Any:
        return "alive"


class NoHandler(Paglet[EmptyState]):
    """Uses the default ``handle_message`` (not handled)."""

    State = EmptyState


class FailsOnCreation(Paglet[EmptyState]):
    State = EmptyState

    def on_creation(self, event: CreationEvent) -> None:
        raise RuntimeError("refusing to be born")


class NotAPagletState:
    pass


class Relay(Paglet[EmptyState]):
    """Talks to other paglets of its host from inside its own process."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "forward":
            proxy = self.context.get_proxy(str(msg.get_arg("to")))
            if proxy is None:
                return None
            return {
                "reply": proxy.send(Message("add", {"n": msg.get_arg("n", 1)})),
                "remote": proxy.route is None,
            }
        if msg.kind == "send":
            return self.send(str(msg.get_arg("to")), Message("add", {"n": 1}))
        if msg.kind == "multicast":
            replies = self.multicast("add", {"n": 1}, include_self=False)
            replies.wait_for_all_replies(20)
            return sorted(r.get_reply() for r in replies)
        if msg.kind == "peers":
            return sorted(p.agent_id for p in self.context.get_proxies())
        if msg.kind == "create":
            child = self.context.create_paglet(Counter, CounterState(count=100))
            return child.send(Message("add"))
        if msg.kind == "property":
            self.context.set_property("answer", msg.arg)
            return self.context.get_property("answer")
        return self.not_handled()


@dataclass
class TravelState(PagletState):
    log: list[str] = field(default_factory=list)
    route: list[str] = field(default_factory=list)
    payload: bytes = b""


class Traveller(Paglet[TravelState]):
    """Records every hook; can move itself, from a handler or from ``run()`` (an itinerary)."""

    State = TravelState

    def _host(self) -> str:
        return self.context.name

    def on_creation(self, event: CreationEvent) -> None:
        self.state.log.append(f"created:{event.host_name}:{event.init}")

    def run(self) -> None:
        with self.locked():
            self.state.log.append(f"run:{self._host()}")
            route = list(self.state.route)
        if route:
            with self.locked():
                self.state.route = route[1:]
            self.dispatch(route[0])

    def on_dispatching(self, event: Any) -> None:
        self.state.log.append(f"dispatching:{event.source_host_name}->{event.target_host_name}")

    def on_arrival(self, event: Any) -> None:
        self.state.log.append(f"arrived:{event.host_name}:from:{event.source_host_name}:{event.reason}")

    def on_reverting(self, event: Any) -> None:
        self.state.log.append(f"reverting:{event.source_host_name}->target:{event.target_host_name}")

    def on_cloning(self, event: Any) -> None:
        self.state.log.append("cloning")

    def on_cloned(self, event: Any) -> None:
        self.state.log.append("cloned")

    def on_clone(self, event: Any) -> None:
        self.state.log.append(f"clone:{event.host_name}:from:{event.source_agent_id}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "log":
            return list(self.state.log)
        if msg.kind == "go":
            return self.dispatch(str(msg.arg)).to_wire()
        if msg.kind == "start":
            with self.locked():
                self.state.route = [str(x) for x in msg.arg[1:]]
            return self.dispatch(str(msg.arg[0])).to_wire()
        if msg.kind == "clone_to":
            return self.clone(msg.arg).to_wire()
        if msg.kind == "clone_quick":  # a short ticket: an unanswered commit is in doubt after 3 s
            return self.clone(TransferTicket(str(msg.arg), timeout=0.5)).to_wire()
        if msg.kind == "size":
            return len(self.state.payload)
        return self.not_handled()


class FailsArrival(Paglet[TravelState]):
    State = TravelState

    def on_arrival(self, event: Any) -> None:
        if event.host_name == "beta":
            raise RuntimeError("not on beta")

    def handle_message(self, msg: Message) -> Any:
        return list(self.state.log)


class SlowRunner(Traveller):
    """A traveller whose ``run()`` takes seconds on beta (longer than the ticket's timeout)."""

    def run(self) -> None:
        super().run()
        if self.context.name == "beta":
            threading.Event().wait(2.5)
            with self.locked():
                self.state.log.append("slow run done")


class Advertiser(Paglet[EmptyState]):
    """Advertises and looks up services from inside its process."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "advertise":
            record = self.advertise_service(str(msg.arg), capabilities=["sum"])
            return record.to_wire()
        if msg.kind == "lookup":
            found = self.lookup_service(str(msg.arg))
            return None if found is None else found.to_wire()
        if msg.kind == "unadvertise":
            return len(self.unadvertise_service(str(msg.arg)))
        return self.not_handled()


class Receiver(Paglet[EmptyState]):
    """Reads artifacts sent to it from its host's store."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "take":
            from paglets.artifacts import ArtifactRef

            ref = ArtifactRef.from_wire(msg.get_arg("artifact"))
            target = self.work_dir() / "received.bin"
            self.context.host.client.download_artifact(ref, target)
            return {"size": target.stat().st_size, "sha256": ref.sha256}
        return self.not_handled()


class FileCarrier(Paglet[TravelState]):
    """Registers a file and checks it on arrival."""

    State = TravelState

    def on_arrival(self, event: Any) -> None:
        from pathlib import Path

        path = Path(self.file_path("data"))
        self.state.log.append(f"arrival-sees:{path.exists()}:{path.stat().st_size if path.exists() else -1}")

    def on_clone(self, event: Any) -> None:
        self.on_arrival(event)

    def handle_message(self, msg: Message) -> Any:
        from pathlib import Path

        name = msg.get_arg("name", "data")
        if msg.kind == "register":
            ref = self.register_file(str(msg.arg), name=name, mode=msg.get_arg("mode", "copy"))
            return ref.sha256
        if msg.kind == "where":
            return str(self.file_path(name))
        if msg.kind == "read":
            return Path(self.file_path(name)).read_bytes()
        if msg.kind == "log":
            return list(self.state.log)
        if msg.kind == "work":
            return str(self.work_dir())
        return self.not_handled()


class Sleeper(Paglet[CounterState]):
    """Records persistence hooks; can deactivate itself; can register resources whose cleanup fails."""

    State = CounterState

    def on_deactivating(self, event: Any) -> None:
        self.state.log.append(f"deactivating:{event.reason}")

    def on_activation(self, event: Any) -> None:
        self.state.log.append(f"activated:{event.reason}")

    def run(self) -> None:
        with self.locked():
            self.state.log.append(f"run:{self.context.name}")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "add":
            self.state.count += msg.get_arg("n", 1)
            return self.state.count
        if msg.kind == "log":
            return list(self.state.log)
        if msg.kind == "sleep":
            from paglets.persistence.persistency import DeactivationPolicy

            return self.deactivate(reason="nap", policy=DeactivationPolicy(**(msg.arg or {}))).to_wire()
        if msg.kind == "resources":
            order: list[str] = self.state.log

            def fail() -> None:
                order.append("cleanup:bad")
                raise RuntimeError("resource refused to close")

            self.resources.register("first", lambda: order.append("cleanup:first"))
            self.resources.register("bad", fail)
            return "ok"
        if msg.kind == "slow":
            with self.locked():
                self.state.log.append("slow-begin")
            threading.Event().wait(float(msg.arg))
            return "slow-done"
        return self.not_handled()


class MeshAsker(Paglet[EmptyState]):
    """Looks services up across the mesh and lists hosts, from inside a paglet."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        from paglets.core.runtime_values import ServiceScope

        if msg.kind == "lookup_mesh":
            found = self.lookup_service(str(msg.arg), scope=ServiceScope.MESH)
            return None if found is None else found.to_wire()
        if msg.kind == "hosts":
            return sorted(h.name for h in self.context.available_hosts())
        if msg.kind == "advertise_mesh":
            return self.advertise_service(str(msg.arg), scope=ServiceScope.MESH).to_wire()
        return self.not_handled()


@dataclass
class EchoRequest:
    text: str = ""


@dataclass
class EchoReply:
    text: str = ""
    calls: int = 0


def _echo_contract() -> Any:
    from paglets.services.contracts import ServiceContract, ServiceOperation

    return ServiceContract("echo", (ServiceOperation("echo", EchoRequest, EchoReply),))


ECHO_CONTRACT = _echo_contract()


class EchoService(Paglet[CounterState]):
    """A lazy resident service answering ``echo``."""

    State = CounterState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "echo":
            self.state.count += 1
            request = ECHO_CONTRACT.operation("echo").decode_request(msg)
            return ECHO_CONTRACT.operation("echo").encode_reply(
                EchoReply(request.text.upper(), self.state.count)
            )
        return self.not_handled()


def _echo_resident() -> Any:
    from paglets.core.runtime_values import ResidentLifecycle
    from paglets.services.resident import ResidentServiceSpec

    return (ResidentServiceSpec(ECHO_CONTRACT, lifecycle=ResidentLifecycle.LAZY, idle_timeout=30.0),)


class ResidentEcho(EchoService):
    """``EchoService`` declared as a resident service of its class."""

    RESIDENT_SERVICES = _echo_resident()


class NameUser(Paglet[EmptyState]):
    """Uses host names and URLs from inside a paglet (each call's error comes back as the reply)."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        target = str(msg.arg)
        if msg.kind == "dispatch_to":
            return self.context.dispatch_to(self.agent_id, target).to_wire()
        if msg.kind == "resolve":
            return self.context.host.resolve_host_url(target)
        if msg.kind == "wait_for":
            return self.context.wait_for_host(target, timeout=0.3).name
        if msg.kind == "create_remote":
            return self.context.host.create_remote(target, NameUser).to_wire()
        return self.not_handled()


class RawSender(Paglet[EmptyState]):
    """Makes host calls with arguments as they are (the checks of a paglet's own API are skipped), to
    test the host's side: ``raw`` sends a ``DeliverMessage`` whose message is ``message`` as given (a
    dict becomes the array of ``MessageWire`` fields, whatever their types), ``call`` sends the request
    type named ``type`` with the fields ``args``."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        import msgspec

        from paglets.wire import control
        from paglets.wire.ipc import MessageWire

        host: Any = self.context.host  # the paglet process's host (its ``call`` sends a host call)
        if msg.kind == "raw":
            message = msg.get_arg("message")
            if isinstance(message, dict):
                defaults = MessageWire("")
                message = [
                    message.get(f, getattr(defaults, f) if f != "kind" else None)
                    for f in MessageWire.__struct_fields__
                ]
            raw = msgspec.Raw(msgspec.msgpack.encode(message))
            return host.call(control.DeliverMessage(str(msg.get_arg("to")), raw), 30.0)
        if msg.kind == "call":
            types = {cls.__name__: cls for cls in control.CONTROL_REQUEST_TYPES}
            return host.call(types[str(msg.get_arg("type"))](**msg.get_arg("args")), 30.0)
        return self.not_handled()


class EnvReporter(Paglet[EmptyState]):
    """Reports what of a secret its process can see, and calls its own host over HTTP."""

    State = EmptyState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "secret-seen":
            secret = str(msg.arg)
            with open("/proc/self/environ", "rb") as fh:
                raw = fh.read()
            return {
                "environ": sorted(name for name, value in os.environ.items() if secret in value),
                "proc": secret.encode() in raw,
            }
        if msg.kind == "health":
            host: Any = self.context.host
            return host.client.get_json(f"{self.context.address}/health")["name"]
        return self.not_handled()


class LeavesWithMail(Paglet[GateState]):
    """Dispatches itself from a handler once a file exists (messages queue up meanwhile); its ``run()``
    raises on beta, so messages forwarded there fail."""

    State = GateState

    def run(self) -> None:
        if self.context.name == "beta":
            raise RuntimeError("no run() on beta")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "wait_then_go":
            path = str(msg.get_arg("gate"))
            gate = threading.Event()
            for _ in range(2000):
                if os.path.exists(path):
                    break
                gate.wait(0.01)
            self.dispatch(str(msg.get_arg("to")))
            return None
        if msg.kind == "rec":
            return None


@dataclass
class SeenState(PagletState):
    seen: list[str] = field(default_factory=list)
    #: a path: ``SlowActivation.on_activation`` creates ``<gate>.started``, then waits until ``gate`` exists
    gate: str = ""


class Sequenced(Paglet[SeenState]):
    """Records the messages it handles, in order: ``seq`` appends ``seq:<arg>:p<priority>``; ``stats``
    answers what it has seen so far (and is recorded too); ``hold`` waits (30 s at most) until the file
    ``arg`` exists, then appends ``hold:p<priority>``."""

    State = SeenState

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "hold":
            gate = threading.Event()
            for _ in range(3000):
                if os.path.exists(str(msg.arg)):
                    break
                gate.wait(0.01)
            self.state.seen.append(f"hold:p{msg.priority}")
            return len(self.state.seen)
        if msg.kind == "seq":
            self.state.seen.append(f"seq:{msg.arg}:p{msg.priority}")
            return len(self.state.seen)
        if msg.kind == "stats":
            seen = list(self.state.seen)
            self.state.seen.append(f"stats:p{msg.priority}")
            return {"count": len(seen), "seen": seen}
        return self.not_handled()


class SlowActivation(Sequenced):
    """A ``Sequenced`` whose activation hook waits (30 s at most) for the test to open a gate (a file)."""

    def on_activation(self, event: Any) -> None:
        if not self.state.gate:
            return
        with open(self.state.gate + ".started", "w"):
            pass
        deadline = threading.Event()
        for _ in range(3000):
            if os.path.exists(self.state.gate):
                return
            deadline.wait(0.01)


@dataclass
class BlockerState(PagletState):
    pings: int = 0
    #: a file ``on_disposing`` creates (to tell whether it ran)
    marker: str = ""


class Blocker(Paglet[BlockerState]):
    """``block`` never returns (an hour); ``slow`` takes ``arg`` seconds; ``setup`` gives it a work file, an
    artifact and a service; ``send_to`` sends a message to another paglet from inside this one."""

    State = BlockerState

    def on_disposing(self, event: Any) -> None:
        if self.state.marker:
            with open(self.state.marker, "w") as fh:
                fh.write("disposed")

    def handle_message(self, msg: Message) -> Any:
        if msg.kind == "block":
            threading.Event().wait(3600)
            return "unblocked"
        if msg.kind == "slow":
            threading.Event().wait(float(msg.arg))
            return "slow-done"
        if msg.kind == "ping":
            with self.locked():
                self.state.pings += 1
            return "pong"
        if msg.kind == "pings":
            return self.state.pings
        if msg.kind == "setup":
            work = self.work_dir()
            (work / "scratch.txt").write_text("scratch")
            artifact = self.upload_artifact(work / "scratch.txt", name="scratch")
            self.advertise_service("blocker-service")
            return {"work": str(work), "artifact": artifact.artifact_id}
        if msg.kind == "send_to":
            proxy = self.context.get_proxy(str(msg.get_arg("to")))
            assert proxy is not None
            try:
                return {
                    "result": proxy.send(Message(str(msg.get_arg("kind"))), timeout=msg.get_arg("timeout"))
                }
            except Exception as exc:
                return {
                    "error": type(exc).__name__,
                    "timeout": isinstance(exc, TimeoutError),
                    "message": str(exc),
                }
        return self.not_handled()
