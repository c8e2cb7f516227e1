from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from paglets.core import agent as agent_module
from paglets.core.agent import (
    ACTIVE,
    INACTIVE,
    NOT_HANDLED,
    Paglet,
    PagletContext,
    PagletState,
    state_locked,
)
from paglets.core.errors import HostError, NotHandledError
from paglets.core.events import CreationEvent, PersistencyEvent
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime.resources import ResourceRegistry

if TYPE_CHECKING:
    from .conftest import RecordingHost

WAIT = 5.0


@dataclass
class Counter(PagletState):
    count: int = 0
    log: list[str] = field(default_factory=list)


class CounterPaglet(Paglet[Counter]):
    State = Counter

    @state_locked
    def bump(self, by: int = 1) -> int:
        """Add ``by``."""
        self.state.count += by
        return self.state.count

    def holds_lock(self) -> bool:
        return self._state_lock._is_owned()  # type: ignore[attr-defined]


def attached(host: RecordingHost) -> CounterPaglet:
    paglet = CounterPaglet(agent_id="p" * 32)
    paglet._attach(PagletContext(host, paglet.agent_id))  # type: ignore[arg-type]
    return paglet


# --- construction ----------------------------------------------------------------------------------------


def test_module_constants() -> None:
    assert (ACTIVE, INACTIVE) == (1, 2)
    assert (Paglet.ACTIVE, Paglet.INACTIVE, Paglet.MAILBOX_WORKERS) == (1, 2, 4)
    assert repr(NOT_HANDLED) == "NOT_HANDLED"
    assert Paglet.not_handled() is NOT_HANDLED
    assert type(NOT_HANDLED)() is NOT_HANDLED


def test_construction_defaults() -> None:
    paglet = CounterPaglet()
    assert paglet.state == Counter()
    assert len(paglet.agent_id) == 32
    assert int(paglet.agent_id, 16) >= 0
    assert paglet.agent_id != CounterPaglet().agent_id
    assert isinstance(paglet.resources, ResourceRegistry)
    assert CounterPaglet.state_class() is Counter
    explicit = CounterPaglet(Counter(5), agent_id="given")
    assert explicit.state.count == 5
    assert explicit.agent_id == "given"
    assert "given" in repr(explicit)


def test_state_must_be_a_dataclass() -> None:
    class NoState(Paglet[Any]):
        pass

    class NotADataclass(Paglet[Any]):
        State = dict

    with pytest.raises(HostError, match="State"):
        NoState.state_class()
    with pytest.raises(HostError):
        NoState()
    with pytest.raises(HostError, match="dataclass"):
        NotADataclass.state_class()
    with pytest.raises(HostError, match="dataclass instance"):
        CounterPaglet({"count": 1})  # type: ignore[arg-type]
    with pytest.raises(HostError, match="dataclass instance"):
        CounterPaglet(Counter)  # type: ignore[arg-type]


def test_context_before_attachment() -> None:
    with pytest.raises(HostError, match="not attached"):
        CounterPaglet().context  # noqa: B018


# --- hooks -----------------------------------------------------------------------------------------------


def test_default_hooks() -> None:
    paglet = CounterPaglet()
    event = CreationEvent("a", "h", "http://h")
    paglet.on_creation(event)
    paglet.run()
    with pytest.raises(NotHandledError, match="ping"):
        paglet.handle_message(Message("ping"))
    assert paglet.deactivation_policy(DeactivationRequest()) == DeactivationPolicy()
    policy = DeactivationPolicy(activate_on_message=False)
    assert paglet.deactivation_policy(DeactivationRequest(policy=policy)) is policy
    for hook in ("on_deactivating", "on_activation", "on_disposing"):
        assert getattr(paglet, hook)(PersistencyEvent("a", "h", "http://h")) is None
    assert paglet.state == Counter()


# --- locking ---------------------------------------------------------------------------------------------


def test_state_locked_runs_under_the_reentrant_lock() -> None:
    paglet = CounterPaglet()

    class Probe(CounterPaglet):
        @state_locked
        def nested(self) -> tuple[bool, int]:
            return self.holds_lock(), self.bump(2)  # re-entrant

    probe = Probe()
    assert probe.nested() == (True, 2)
    assert not probe.holds_lock()
    assert CounterPaglet.bump.__doc__ == "Add ``by``."
    with paglet.locked():
        assert paglet.holds_lock()
    with paglet.locked_state() as state:
        assert state is paglet.state
        assert paglet.holds_lock()


def test_state_locked_excludes_other_threads() -> None:
    paglet = CounterPaglet()
    inside = threading.Event()
    release = threading.Event()
    result: list[int] = []

    def hold() -> None:
        with paglet.locked():
            inside.set()
            assert release.wait(WAIT)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(WAIT)
    bumper = threading.Thread(target=lambda: result.append(paglet.bump()))
    bumper.start()
    bumper.join(0.05)
    assert bumper.is_alive()
    assert result == []
    release.set()
    bumper.join(WAIT)
    holder.join(WAIT)
    assert result == [1]


def test_wait_state_returns_at_once_when_true_and_times_out_otherwise() -> None:
    paglet = CounterPaglet()
    assert paglet.wait_state(lambda s: s.count == 0, timeout=0) is True
    assert paglet.wait_state(lambda s: s.count == 1, timeout=0.02) is False
    assert paglet.wait_state(lambda s: s.count == 1, timeout=-1) is False


def test_wait_state_is_woken_by_notify() -> None:
    paglet = CounterPaglet()
    results: list[bool] = []
    waiting = threading.Event()

    def waiter() -> None:
        def predicate(state: Counter) -> bool:
            waiting.set()
            return state.count >= 3

        results.append(paglet.wait_state(predicate, timeout=WAIT))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(WAIT)
    with paglet.locked_state() as state:
        state.count = 3
        paglet.notify_state_changed()
    thread.join(WAIT)
    assert results == [True]


def test_notify_all_wakes_every_waiter() -> None:
    paglet = CounterPaglet()
    results: list[bool] = []
    ready = threading.Barrier(4)

    def waiter() -> None:
        ready.wait(WAIT)
        results.append(paglet.wait_state(lambda s: s.count > 0, timeout=WAIT))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in threads:
        thread.start()
    ready.wait(WAIT)
    # The waiters hold the lock only while checking the predicate: once we hold it, each one is
    # either waiting on the condition or has not checked yet; both see the new value.
    with paglet.locked():
        paglet.state.count = 1
        paglet.notify_all_state_changed()
    for thread in threads:
        thread.join(WAIT)
    assert results == [True, True, True]


def test_wait_message_is_child_local() -> None:
    paglet = CounterPaglet()
    assert paglet.wait_message(timeout=0.01) is False  # nobody notifies: times out
    woke: list[bool] = []
    ready = threading.Event()

    def waiter() -> None:
        ready.set()
        woke.append(paglet.wait_message(timeout=WAIT))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert ready.wait(WAIT)
    # A notify sent before the waiter waits is lost (a plain condition), so notify until it wakes.
    while thread.is_alive():
        paglet.notify_all_messages()
        thread.join(0.01)
    assert woke == [True]

    thread = threading.Thread(target=waiter)
    thread.start()
    while thread.is_alive():
        paglet.notify_message()
        thread.join(0.01)
    assert woke == [True, True]


# --- forwarding through the context ----------------------------------------------------------------------


def test_movement_remembers_the_last_proxy(host: RecordingHost) -> None:
    paglet = attached(host)
    host.results["dispatch"] = lambda agent_id, target: f"moved:{target}"
    assert paglet.dispatch("http://beta:1") == "moved:http://beta:1"
    assert paglet._last_proxy == "moved:http://beta:1"
    host.results["clone"] = lambda agent_id, target: f"clone:{target}"
    assert paglet.clone() == "clone:None"
    assert host.last("clone") == {"agent_id": paglet.agent_id, "target": None}
    host.results["resolve_host_url"] = lambda name_or_url: "http://gamma:1"
    paglet.dispatch_to("gamma")
    paglet.clone_to("gamma")
    assert paglet._last_proxy == "clone:http://gamma:1"


def test_deactivate_builds_a_self_request(host: RecordingHost) -> None:
    paglet = attached(host)
    policy = DeactivationPolicy.after(60)
    paglet.deactivate(reason="nap", policy=policy, metadata={"k": 1})
    request = host.last("deactivate")["request"]
    assert request == DeactivationRequest(reason="nap", source="self", policy=policy, metadata={"k": 1})
    paglet.deactivate()
    assert host.last("deactivate")["request"] == DeactivationRequest(source="self")


def test_send_and_multicast(host: RecordingHost) -> None:
    paglet = attached(host)

    class Proxy:
        def send(self, message: Message) -> str:
            return f"reply:{message.kind}:{message.sender}"

    host.results["get_proxy"] = lambda agent_id, include_inactive: Proxy()
    assert paglet.send("b", Message("ping")) == f"reply:ping:{host.address}"
    paglet.multicast("k", {"a": 1})
    assert host.last("multicast_message")["exclude"] is None
    paglet.multicast("k", include_self=False)
    assert host.last("multicast_message") == {
        "kind": "k",
        "args": None,
        "exclude": {paglet.agent_id},
    }


def test_services_storage_and_artifacts_forward_the_agent_id(host: RecordingHost) -> None:
    paglet = attached(host)
    me = paglet.agent_id
    paglet.advertise_service("svc", scope=ServiceScope.MESH)
    assert host.last("advertise_service")["agent_id"] == me
    paglet.unadvertise_service("svc")
    assert host.last("unadvertise_service") == {"name": "svc", "agent_id": me}
    paglet.lookup_services("svc")
    paglet.lookup_service("svc")
    paglet.work_dir()
    assert host.last("work_dir_for") == {"agent_id": me, "create": True}
    paglet.persistent_storage(quota_bytes=5)
    assert host.last("persistent_storage_for") == {"agent_id": me, "quota_bytes": 5}
    paglet.register_file("f.txt")
    assert host.last("register_file_for") == {"agent_id": me, "path": "f.txt", "name": None, "mode": "copy"}
    paglet.registered_files()
    paglet.unregister_file("f.txt")
    paglet.file_path("f.txt")
    assert host.last("registered_file_path_for") == {"agent_id": me, "name_or_ref": "f.txt"}
    paglet.upload_artifact("f.txt")
    assert host.last("upload_artifact")["owner_agent_id"] == me
    paglet.upload_artifact("f.txt", owner_agent_id="")
    assert host.last("upload_artifact")["owner_agent_id"] == ""


def test_contract_helpers_forward(host: RecordingHost) -> None:
    paglet = attached(host)
    calls: list[tuple[str, dict[str, Any]]] = []
    forwarded = {
        "advertise_contract",
        "lookup_contract",
        "lookup_contracts",
        "require_contract",
        "lease_contract",
    }

    class Recording(PagletContext):
        def __getattribute__(self, name: str) -> Any:
            if name in forwarded:
                return lambda *args, **kwargs: calls.append((name, kwargs))
            return super().__getattribute__(name)

    paglet._attach(Recording(host, paglet.agent_id))  # type: ignore[arg-type]
    contract = object()
    paglet.advertise_contract(contract, ttl=3.0)
    paglet.lookup_contract(contract, operation="op")
    paglet.lookup_contracts(contract)
    paglet.require_contract(contract, scope=ServiceScope.MESH)
    paglet.lease_contract(contract, ttl=9.0)
    assert [name for name, _ in calls] == [
        "advertise_contract",
        "lookup_contract",
        "lookup_contracts",
        "require_contract",
        "lease_contract",
    ]
    assert calls[0][1]["agent_id"] == paglet.agent_id
    assert calls[0][1]["ttl"] == 3.0
    assert calls[1][1]["operation"] == "op"
    assert calls[3][1]["scope"] is ServiceScope.MESH
    assert calls[4][1]["ttl"] == 9.0


def test_public_names() -> None:
    assert set(agent_module.__all__) >= {
        "Paglet",
        "PagletState",
        "PagletContext",
        "state_locked",
        "ACTIVE",
        "INACTIVE",
        "NOT_HANDLED",
        "HostFacade",
    }
