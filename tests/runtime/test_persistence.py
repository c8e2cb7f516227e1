"""``Persistence`` built with fakes: no ``Host``, no paglet processes; a real record store in a temp dir.

The fake manager hands out fake controllers that answer the deactivation hook, the cleanup and the
snapshot as a paglet process would; the test checks what ``Persistence`` writes, in which order it asks
its collaborators, and what the activation gets back from the record.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from paglets.artifacts import PagletFileRef
from paglets.core.context_events import ContextEventLog
from paglets.core.errors import PagletInactiveError
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime._controller import MailboxItem, Snapshot
from paglets.runtime._paglets import Timeouts
from paglets.runtime._persistence import Persistence
from paglets.wire.control import ProxyRef
from paglets.wire.encoded import EncodedMessage
from paglets.wire.ipc import MessageWire

ADDRESS = "http://127.0.0.1:8701"


class _Delivery:
    def __init__(self, item: MailboxItem) -> None:
        self.item = item


class FakeController:
    """What ``Persistence`` uses of a ``PagletController``."""

    def __init__(self, agent_id: str, policy: DeactivationPolicy, *, fail_snapshot: bool = False) -> None:
        self.agent_id = agent_id
        self.agent_class = "tests.runtime:Counter"
        self.state_class = "tests.runtime:CounterState"
        self.status = "ready"
        self.lock = threading.Lock()
        self.waiting: list[MailboxItem] = []
        self.policy = policy
        self.fail_snapshot = fail_snapshot
        self.asked: list[str] = []
        self.pumped = 0

    @property
    def mailbox(self) -> list[_Delivery]:
        return [_Delivery(item) for item in self.waiting]

    async def lifecycle(self, hook: str, event: Any, timeout: float | None) -> Any:
        self.asked.append(f"hook:{hook}:{event.reason}")
        return {"policy": self.policy.to_wire()}

    async def resources(self, op: str, *, reason: str = "", timeout: float | None = None) -> Any:
        self.asked.append(f"resources:{op}:{reason}")
        return {}

    async def snapshot(self, timeout: float | None) -> Snapshot:
        self.asked.append("snapshot")
        if self.fail_snapshot:
            raise OSError("disk on fire")
        return Snapshot(memoryview(b"state-bytes"), None)

    def pump(self) -> None:
        self.pumped += 1

    def pause(self) -> None:
        assert self.status == "ready"
        self.status = "moving"

    def resume(self) -> bool:
        if self.status != "moving":
            return False
        self.status = "ready"
        self.pump()
        return True

    def transition(self, status: str) -> None:
        self.status = status


class FakeAgents:
    def __init__(self) -> None:
        self.controllers: dict[str, Any] = {}
        self.timeouts = Timeouts()
        self.log: list[tuple[str, Any]] = []
        self.delivered: list[tuple[str, EncodedMessage]] = []

    def ready(self, agent_id: str) -> Any:
        return self.controllers[agent_id]

    def detach(self, ctrl: Any) -> list[MailboxItem]:
        self.log.append(("detach", ctrl.agent_id))
        self.controllers.pop(ctrl.agent_id, None)
        return list(ctrl.waiting)

    async def release_when_idle(self, ctrl: Any) -> None:
        self.log.append(("release", ctrl.agent_id))

    async def start_from_state(self, **kwargs: Any) -> Any:
        self.log.append(("start", kwargs))
        ctrl = FakeController(kwargs["agent_id"], DeactivationPolicy())
        self.controllers[ctrl.agent_id] = ctrl
        return ctrl

    async def deliver(
        self, agent_id: str, message: EncodedMessage, *, oneway: bool, timeout: float | None = None
    ) -> object:
        self.delivered.append((agent_id, message))
        return "delivered"


class FakeFiles:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.registered = [PagletFileRef("notes.txt", sha256="0" * 64)]

    def refs(self, agent_id: str) -> list[PagletFileRef]:
        return list(self.registered)

    def forget(self, agent_id: str, *, remove_work_dir: bool) -> None:
        self.log.append(("forget", remove_work_dir))

    def restore(self, agent_id: str, refs: list[PagletFileRef]) -> None:
        self.log.append(("restore", [r.name for r in refs]))


def _message(kind: str, message_id: str) -> EncodedMessage:
    return EncodedMessage.of(MessageWire(kind, {"n": 1}, sender="x", message_id=message_id, timestamp=1.0))


async def _scenario(root: Path, body: Any) -> Any:
    agents, files = FakeAgents(), FakeFiles()
    spawned: list[Coroutine[Any, Any, None]] = []
    persistence = Persistence(
        name="alpha",
        address=lambda: ADDRESS,
        root=root,
        events=ContextEventLog(host_name="alpha", host_address=ADDRESS),
        agents=agents,
        files=files,
        spawn=spawned.append,
    )
    await persistence.start()
    try:
        return await body(persistence, agents, files)
    finally:
        for coro in spawned:
            coro.close()
        await persistence.close()


def test_deactivation_writes_the_record_before_the_process_goes(tmp_path: Path) -> None:
    async def body(persistence: Persistence, agents: FakeAgents, files: FakeFiles) -> None:
        policy = DeactivationPolicy(activate_on_message=False, queue_messages_when_inactive=True)
        ctrl = agents.controllers["a1"] = FakeController("a1", policy)
        ctrl.waiting = [MailboxItem(_message("add", "m1"), True, None)]
        where = await persistence.deactivate("a1", DeactivationRequest(reason="nap"))
        assert where == ProxyRef(ADDRESS, "a1")
        assert ctrl.asked == ["hook:deactivating:nap", "resources:cleanup:deactivate", "snapshot"]
        assert agents.log == [("detach", "a1"), ("release", "a1")]
        assert files.log == [("forget", False)]  # the work dir stays: the paglet comes back
        record = await persistence.read("a1")
        assert bytes(record.state) == b"state-bytes"
        assert DeactivationPolicy.from_wire(record.policy) == policy
        assert [m.message["message_id"] for m in record.queued_messages] == ["m1"]
        assert [f["name"] for f in record.registered_files] == ["notes.txt"]
        # a message to it now is queued (its policy), and activation brings everything back in order
        queued = await persistence.deliver(
            "a1", _message("add", "m2"), oneway=False, activate_if_inactive=True, no_delay=False
        )
        assert queued == {"queued": True, "message_id": "m2"}
        assert await persistence.activate("a1") == ProxyRef(ADDRESS, "a1")
        (_, start), *_ = [entry for entry in agents.log if entry[0] == "start"]
        assert start["state"] == b"state-bytes"
        assert start["hook"] == "activation"
        assert [item.message.message_id for item in start["queued"]] == ["m1", "m2"]
        assert files.log[-1] == ("restore", ["notes.txt"])
        assert persistence.summary("a1") is None  # the record is gone once the paglet runs

    asyncio.run(_scenario(tmp_path, body))


def test_a_failed_save_resumes_the_paglet(tmp_path: Path) -> None:
    async def body(persistence: Persistence, agents: FakeAgents, files: FakeFiles) -> None:
        ctrl = agents.controllers["a1"] = FakeController("a1", DeactivationPolicy(), fail_snapshot=True)
        with pytest.raises(OSError, match="disk on fire"):
            await persistence.deactivate("a1", None)
        assert ctrl.status == "ready"
        assert ctrl.pumped == 1
        assert agents.log == []  # never detached
        assert persistence.summary("a1") is None

    asyncio.run(_scenario(tmp_path, body))


def test_a_message_to_an_inactive_paglet_follows_its_policy(tmp_path: Path) -> None:
    async def body(persistence: Persistence, agents: FakeAgents, files: FakeFiles) -> None:
        refusing = DeactivationPolicy(activate_on_message=False, queue_messages_when_inactive=False)
        agents.controllers["a1"] = FakeController("a1", refusing)
        await persistence.deactivate("a1", None)
        with pytest.raises(PagletInactiveError):
            await persistence.deliver(
                "a1", _message("add", "m3"), oneway=True, activate_if_inactive=True, no_delay=False
            )
        agents.controllers["a2"] = FakeController("a2", DeactivationPolicy(activate_on_message=True))
        await persistence.deactivate("a2", None)
        answer = await persistence.deliver(
            "a2", _message("add", "m4"), oneway=False, activate_if_inactive=True, no_delay=False
        )
        assert answer == "delivered"
        assert [(agent_id, m.message_id) for agent_id, m in agents.delivered] == [("a2", "m4")]

    asyncio.run(_scenario(tmp_path, body))
