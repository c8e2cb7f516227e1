"""``MessageRouter`` and the bind watcher, built with fakes (no ``Host``, no processes, no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from paglets.core.context_events import ContextEventLog
from paglets.core.errors import HostError
from paglets.core.messages import DEACTIVATE_KIND
from paglets.runtime._binding import BindingWatcher, HostAddress
from paglets.runtime._controller import MailboxItem
from paglets.runtime._paglets import Timeouts
from paglets.runtime._routing import MessageRouter
from paglets.wire.control import ProxyRef
from paglets.wire.encoded import EncodedMessage
from paglets.wire.ipc import MessageWire

ADDRESS = "http://127.0.0.1:8701"


class FakeAgents:
    def __init__(self, live: set[str]) -> None:
        self.controllers: dict[str, Any] = dict.fromkeys(live, object())
        self.timeouts = Timeouts(send=7.0)
        self.delivered: list[tuple[str, str, float | None]] = []

    def submit_threadsafe(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not used on the loop")

    async def deliver(
        self, agent_id: str, message: EncodedMessage, *, oneway: bool, timeout: float | None = None
    ) -> object:
        if agent_id == "broken":
            raise HostError("boom")
        self.delivered.append((agent_id, message.message_id, timeout))
        return f"active:{agent_id}"


class FakeRecords:
    def __init__(self, stored: set[str]) -> None:
        self.stored = stored
        self.log: list[tuple[str, Any]] = []

    def summary(self, agent_id: str) -> object | None:
        return object() if agent_id in self.stored else None

    async def deliver(self, agent_id: str, message: EncodedMessage, **kwargs: Any) -> object:
        self.log.append(("deliver", agent_id))
        return f"inactive:{agent_id}"

    async def deactivate(self, agent_id: str, request: Any) -> ProxyRef:
        self.log.append(("deactivate", request.reason if request else None))
        return ProxyRef(ADDRESS, agent_id)


class FakeResidents:
    def __init__(self, agents: FakeAgents) -> None:
        self.agents = agents
        self.started: list[str] = []

    def is_resident(self, agent_id: str) -> bool:
        return agent_id == "svc"

    async def ensure_started(self, agent_id: str) -> None:
        self.started.append(agent_id)
        self.agents.controllers[agent_id] = object()


def _router(
    live: set[str], stored: set[str], posted: list[Any]
) -> tuple[MessageRouter, FakeAgents, FakeRecords, FakeResidents, ContextEventLog]:
    agents, records = FakeAgents(live), FakeRecords(stored)
    residents = FakeResidents(agents)
    events = ContextEventLog(host_name="alpha", host_address=ADDRESS)

    async def post(url: str, body: dict[str, object]) -> object:
        posted.append((url, body))
        return {"result": "remote"}

    router = MessageRouter(
        host_name="alpha",
        address=lambda: ADDRESS,
        loop=None,  # type: ignore[arg-type]  # only the user-thread entry points use it
        started=lambda: True,
        agents=agents,
        records=records,
        residents=residents,
        post=post,
        events=events,
    )
    return router, agents, records, residents, events


def _message(kind: str = "add", message_id: str = "m1", **args: Any) -> EncodedMessage:
    return EncodedMessage.of(MessageWire(kind, args, sender="x", message_id=message_id, timestamp=1.0))


def test_messages_go_where_the_paglet_is() -> None:
    async def main() -> None:
        router, agents, _records, residents, _ = _router({"a1"}, {"sleeper"}, [])
        assert await router.deliver("a1", _message(), oneway=False) == "active:a1"
        assert agents.delivered[-1] == ("a1", "m1", 7.0)  # no deadline given: the host's send_timeout
        assert await router.deliver("sleeper", _message(), oneway=False) == "inactive:sleeper"
        assert await router.deliver("svc", _message(), oneway=True) == "active:svc"
        assert residents.started == ["svc"]  # a lazy resident service starts on its first message
        await router.deliver("a1", _message(message_id="m2"), oneway=False, timeout=float("inf"))
        assert agents.delivered[-1] == ("a1", "m2", None)  # inf: no limit

    asyncio.run(main())


def test_the_reserved_deactivation_message_deactivates() -> None:
    async def main() -> None:
        router, agents, records, _, _ = _router({"a1"}, set(), [])
        message = _message(DEACTIVATE_KIND, request={"reason": "asked"})
        answer = await router.deliver("a1", message, oneway=False)
        assert answer == {"deactivated": True, "proxy": {"host_url": ADDRESS, "agent_id": "a1"}}
        assert records.log == [("deactivate", "asked")]
        assert agents.delivered == []

    asyncio.run(main())


def test_waiting_messages_follow_a_paglet_that_moved() -> None:
    async def main() -> None:
        posted: list[Any] = []
        router, _agents, _, _, events = _router({"a1"}, set(), posted)
        loop = asyncio.get_running_loop()
        waiting = loop.create_future()
        items = [
            MailboxItem(_message(message_id="m1"), False, waiting),
            MailboxItem(_message(message_id="m2"), True, None),
        ]
        await router.forward_waiting(items, ProxyRef("http://127.0.0.1:8702/", "a1"))
        assert waiting.result() == "remote"
        assert [url for url, _ in posted] == ["http://127.0.0.1:8702/agents/a1/messages"] * 2
        assert posted[1][1]["oneway"] is True
        assert posted[0][1]["message"]["message_id"] == "m1"
        # to this host: straight into the mailbox; a oneway one that fails is reported
        failed = MailboxItem(_message(message_id="m3"), True, None)
        await router.forward_waiting([failed], ProxyRef(ADDRESS, "broken"))
        (event,) = [e for e in events.events_since(0, 100) if e.kind == "message-forward-failed"]
        assert event.message_id == "m3"

    asyncio.run(main())


# --- the bind watcher -------------------------------------------------------------------------------------


class FakeServer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.asked: list[list[str]] = []

    async def rebind(self, bind_hosts: list[str]) -> None:
        self.asked.append(list(bind_hosts))
        if self.fail:
            raise HostError("cannot bind 10.2.0.1:8701: address in use")


@pytest.mark.parametrize("fail", [True, False])
def test_the_address_changes_only_once_the_new_one_is_bound(fail: bool) -> None:
    address = HostAddress(["10.1.0.1"], 8701, None)
    changed: list[str] = []
    server = FakeServer(fail)
    watcher = BindingWatcher(
        specs=["auto"], interval=1.0, address=address, server=server, changed=changed.append
    )
    assert asyncio.run(watcher.rebind(["10.2.0.1"])) is not fail
    assert server.asked == [["10.2.0.1"]]
    if fail:
        assert (address.url, changed) == ("http://10.1.0.1:8701", [])
    else:
        assert (address.url, changed) == ("http://10.2.0.1:8701", ["http://10.1.0.1:8701"])
