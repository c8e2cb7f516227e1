"""A Hypothesis state machine: writes, appends, deletes, reloads and crash debris in any order.

After every step the store (and, after a reload, what was on disk) equals a plain model: for each agent
id its state and its queued messages in order.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from paglets.core.errors import InvalidAgentError
from paglets.persistence._records import RecordStore, StoredMessage, StoredRecord, file_stem

IDS = st.sampled_from(["a", "b", "svc:c", "d" * 40])
STATES = st.binary(max_size=600) | st.builds(lambda n: b"z" * n, st.integers(0, 5000))


class RecordStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="paglets-records-"))
        self.reports: list[tuple[str, str]] = []
        self.store = self._open()
        self.model: dict[str, tuple[bytes, list[dict[str, Any]]]] = {}
        self.counter = 0
        self.torn: set[str] = set()  # logs that end in a torn entry (cut by the next append)

    def _open(self) -> RecordStore:
        store = RecordStore(self.tmp, durable=False, on_quarantine=lambda *r: self.reports.append(r))
        store.load()
        return store

    def _message(self) -> dict[str, Any]:
        self.counter += 1
        return {
            "kind": "k",
            "args": {"n": self.counter, "b": bytearray(b"\x00")},
            "message_id": str(self.counter),
        }

    @rule(agent_id=IDS, state=STATES, inline=st.integers(0, 2), keep=st.booleans())
    def write(self, agent_id: str, state: bytes, inline: int, keep: bool) -> None:
        new = [self._message() for _ in range(inline)]
        record = StoredRecord(
            agent_id=agent_id,
            agent_class="m:A",
            state_class="m:S",
            state=state,
            queued_messages=[StoredMessage(message=m) for m in new],
        )
        self.store.write(record, keep_messages=keep)
        self.torn.discard(agent_id)
        old = self.model.get(agent_id, (b"", []))[1] if keep else []
        self.model[agent_id] = (state, old + new)

    @rule(agent_id=IDS, oneway=st.booleans())
    def append(self, agent_id: str, oneway: bool) -> None:
        message = self._message()
        if agent_id not in self.model:
            with pytest.raises(InvalidAgentError):
                self.store.append_message(agent_id, message, oneway=oneway)
            return
        count = self.store.append_message(agent_id, message, oneway=oneway)
        self.torn.discard(agent_id)
        self.model[agent_id][1].append(message)
        assert count == len(self.model[agent_id][1])

    @rule(agent_id=IDS)
    def delete(self, agent_id: str) -> None:
        assert self.store.delete(agent_id) is (agent_id in self.model)
        self.torn.discard(agent_id)
        self.model.pop(agent_id, None)

    @rule()
    def reload(self) -> None:
        self.store.close()
        self.store = self._open()

    @rule(agent_id=IDS, cut=st.integers(1, 30))
    def crash_debris(self, agent_id: str, cut: int) -> None:
        """What a crash can leave: a torn log tail, a half-written temporary file; then a restart.

        A crash tears at most the entry being appended, and the next append cuts it: so a log gets a
        torn tail only when it has none yet.
        """
        log = self.store.directory / (file_stem(agent_id) + ".q")
        if log.exists() and agent_id not in self.torn:
            with open(log, "ab") as f:
                f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78" + b"\x01" * cut)  # an entry cut short
            self.torn.add(agent_id)
        (self.store.directory / f".{file_stem(agent_id)}.rec.{cut:012x}.tmp").write_bytes(b"\x00" * cut)
        self.reload()

    @invariant()
    def store_equals_model(self) -> None:
        assert self.reports == []
        assert len(self.store) == len(self.model)
        summaries = {s.agent_id: s for s in self.store.summaries()}
        assert set(summaries) == set(self.model)
        for agent_id, (state, messages) in self.model.items():
            assert summaries[agent_id].queued_count == len(messages)
            assert summaries[agent_id].state_length == len(state)
            got = self.store.read(agent_id)
            assert got.state == state
            assert [m.message for m in got.queued_messages] == messages

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp)


TestRecordStoreMachine = RecordStoreMachine.TestCase
TestRecordStoreMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
