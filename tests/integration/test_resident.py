"""Resident services (contract §5.4, behaviour 28): discoverable before any process, started on first use,
deactivated when idle, kept while leased."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _paglets import ECHO_CONTRACT, CounterState, EchoRequest, EchoService
from conftest import wait_until

from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle
from paglets.remote.client import HostClient
from paglets.runtime._resident import ResidentDeclaration
from paglets.runtime.host import Host


def _declaration(idle: float) -> ResidentDeclaration:
    return ResidentDeclaration(
        agent_id="service.echo",
        agent_class="_paglets:EchoService",
        state_class="_paglets:CounterState",
        contract=ECHO_CONTRACT,
        lifecycle=ResidentLifecycle.LAZY,
        idle_timeout=idle,
    )


def _active(host: Host) -> list[str]:
    return [a["agent_id"] for a in host.list_agents()]


def test_lazy_resident_service_lifecycle(host: Host) -> None:
    assert EchoService.State is CounterState
    host.declare_resident_service(_declaration(idle=0.3))
    record = host.lookup_service("echo")
    assert record is not None
    assert record.proxy.agent_id == "service.echo"
    assert _active(host) == []  # discoverable before any process exists

    reply = host.deliver_message(
        "service.echo", ECHO_CONTRACT.operation("echo").to_message(EchoRequest("hi"))
    )
    assert reply == {"text": "HI", "calls": 1}
    assert "resident-service-create" in [e.kind for e in host.list_events(limit=1000)]

    wait_until(lambda: _active(host) == [], 10)  # idle: deactivated
    assert host.lookup_service("echo") is not None  # still discoverable
    reply = host.deliver_message("service.echo", ECHO_CONTRACT.operation("echo").to_message(EchoRequest("x")))
    assert reply == {"text": "X", "calls": 2}  # activated again with its state

    client = HostClient()
    kinds = [e.kind for e in host.list_events(limit=1000)]
    assert "resident-service-idle-deactivate" in kinds
    # a lease pins the service: still active when the lease expires, well past its idle timeout
    client.post_json(
        host.address + "/services/leases", {"agent_id": "service.echo", "service_name": "echo", "ttl": 1.0}
    )
    assert _active(host) == ["service.echo"]
    wait_until(lambda: any(e.kind == "service-lease-expire" for e in host.list_events(limit=1000)), 10)
    events = host.list_events(limit=1000)
    acquired = max(e.event_id for e in events if e.kind == "service-lease-acquire")
    expired = max(e.event_id for e in events if e.kind == "service-lease-expire")
    assert not [
        e for e in events if e.kind == "resident-service-idle-deactivate" and acquired < e.event_id < expired
    ]
    wait_until(lambda: _active(host) == [], 10)
    lease = client.post_json(
        host.address + "/services/leases", {"agent_id": "service.echo", "service_name": "echo", "ttl": 30}
    )
    url = f"{host.address}/services/leases/{lease['lease_id']}/release"
    assert client.post_json(url, {}) == {"released": True}
    assert client.post_json(url, {}) == {"released": False}
    client.close()


def test_launch_config_declares_services_and_starts_agents(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    config = tmp_path / "launch.toml"
    config.write_text(
        """
[launch]
sync_demo_config = false

[[resident_services]]
class = "_paglets:ResidentEcho"

[[startup_agents]]
class = "_paglets:Counter"
agent_id = "counter.one"
state = { count = 5 }
init = "from-launch"
"""
    )
    directory = tmp_path / "store"
    alpha = make_host("alpha", persistence_dir=directory, launch_config=config)
    record = alpha.lookup_service("echo")
    assert record is not None
    assert record.proxy.agent_id == "service.echo"
    assert alpha.get_state("counter.one", CounterState).count == 5
    assert alpha.deliver_message("counter.one", Message("add")) == 6
    kinds = [e.kind for e in alpha.list_events(limit=1000)]
    assert "resident-service-declare" in kinds
    assert "startup-agent-create" in kinds
    alpha.shutdown()
    again = make_host("alpha", persistence_dir=directory, launch_config=config)
    assert [a["agent_id"] for a in again.list_agents()] == ["counter.one"]  # a singleton: not created twice
    assert again.deliver_message("counter.one", Message("add")) == 7
    assert "startup-agent-skip" in [e.kind for e in again.list_events(limit=1000)]


def test_a_bad_launch_entry_is_reported_not_fatal(make_host: Callable[..., Host], tmp_path: Path) -> None:
    config = tmp_path / "launch.toml"
    config.write_text('[[startup_agents]]\nclass = "no.such.module:Nothing"\n')
    alpha = make_host("alpha", launch_config=config)
    failed = [e for e in alpha.list_events(limit=1000) if e.kind == "startup-agent-failed"]
    assert failed
    assert "no.such.module" in (failed[0].error or "")
