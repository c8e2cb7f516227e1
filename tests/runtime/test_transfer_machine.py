"""The transfer state machine (``paglets/runtime/_transfer.py``) against a model of two hosts and a network.

``TransferWorld`` drives one ``SourceTransfer`` and one ``TargetTransfer`` through random interleavings of
message loss, duplication and reordering (a bag of messages in flight), crashes and restarts of either host
at any step (in-memory state and the paglet copies on the host are lost, durable records stay, a write in
progress lands or not, a record dropped without a sync may come back), eviction of finished transfers from
memory, retries, timeouts and the caller's deadline. After every step: never two running copies of one
paglet, and no copy ever runs with an older state than one that already ran. A caller is told success only
while the target's ``executed`` record is on disk. ``heal`` (also run at the end) restarts every host and
lets the network deliver: every transfer then ends in a final state with exactly one running copy, unless
the paglet was lost in the one case the design allows (``docs/design.md``, "Movement"): every host holding
a copy whose fate was still open crashed.

Graceful stops (``stop``) run what a host does at ``shutdown()``: writes in progress finish, the source
machine gets ``SHUTDOWN`` (a paused copy is resumed after a durable abort, or saved as the transfer's held
copy), running copies are saved and come back at the restart. A graceful stop of the source never loses the
paglet; a held copy is restored or dropped once the target answered. A clone's ``cloned`` hook runs at most
once, and exactly once when the clone exists, the original was not lost and the source host did not go
down before the clone was confirmed.

Transport assumption (TCP): a request or answer addressed to a host is never delivered to a later
incarnation of that host.

Larger run: ``PAGLETS_TRANSFER_EXAMPLES=200000 .venv/bin/python -m pytest -q
tests/runtime/test_transfer_machine.py -p no:cacheprovider`` (see ``docs/design.md``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from paglets.runtime._transfer import (
    ACTIONS,
    TRANSITIONS,
    Action,
    Event,
    Role,
    SourceState,
    SourceTransfer,
    TargetState,
    TargetTransfer,
    TransferStateError,
    incarnation_of,
    source_answer_event,
    target_answer_event,
)

A, E = Action, Event
S_HOST, T_HOST = "S", "T"
ENVELOPE_ATTEMPTS = 3


@dataclass
class Copy:
    host: str
    ident: str  # "orig" (the paglet) or "clone"
    status: str  # "paused" | "running" | "prepared" | "held" (durable, of a stop) | "saved" (inactive)
    version: int


@dataclass
class Msg:
    kind: str
    src: str
    dst: str
    dst_inc: int
    src_inc: int
    data: tuple[Any, ...] = ()


@dataclass
class HostModel:
    name: str
    up: bool = True
    inc: int = 0
    durable: dict[str, str] = field(default_factory=dict)  # role -> outcome
    unsynced_drops: dict[str, str] = field(default_factory=dict)  # dropped without a sync
    machine: SourceTransfer | TargetTransfer | None = None
    pending_write: str | None = None
    preparing: int | None = None  # target: version of the envelope whose arrival hook runs
    deferred_env: list[int] = field(default_factory=list)  # incarnations waiting for an envelope answer
    deferred_commit: list[int] = field(default_factory=list)

    def incarnation(self) -> str:
        return f"{self.inc:016x}"


class TransferWorld(RuleBasedStateMachine):
    @initialize(kind=st.sampled_from(["dispatch", "clone", "retract"]))
    def start(self, kind: str) -> None:
        self.kind = kind
        self.hosts = {S_HOST: HostModel(S_HOST, inc=1), T_HOST: HostModel(T_HOST, inc=1)}
        self.tid = self.hosts[S_HOST].incarnation() + "ab" * 8
        assert incarnation_of(self.tid) == self.hosts[S_HOST].incarnation()
        self.moved = "clone" if kind == "clone" else "orig"
        self.copies: list[Copy] = [Copy(S_HOST, "orig", "paused", 0)]
        self.latest = {"orig": 0, "clone": 0}
        self.snapshot = 0
        self.net: list[Msg] = []
        self.attempts = 1
        self.answers: list[str] = []
        self.lossy = {"orig": False, "clone": False}
        self.cloned_hooks = 0
        self.hook_run_ended = False  # the source host went down before the cloned hook ran
        source = SourceTransfer(self.tid, "p", T_HOST, kind)  # type: ignore[arg-type]
        self.hosts[S_HOST].machine = source
        self._send(S_HOST, T_HOST, "envelope", self.snapshot)

    # --- helpers -----------------------------------------------------------------------------------------

    @property
    def S(self) -> HostModel:
        return self.hosts[S_HOST]

    @property
    def T(self) -> HostModel:
        return self.hosts[T_HOST]

    def _send(self, src: str, dst: str, kind: str, *data: Any) -> None:
        self.net.append(Msg(kind, src, dst, self.hosts[dst].inc, self.hosts[src].inc, data))

    def _reply(self, msg: Msg, kind: str, *data: Any) -> None:
        self.net.append(Msg(kind, msg.dst, msg.src, msg.src_inc, self.hosts[msg.dst].inc, data))

    def _copy(self, host: str, ident: str) -> Copy | None:
        return next((c for c in self.copies if c.host == host and c.ident == ident), None)

    def _run(self, copy: Copy) -> None:
        assert copy.version >= self.latest[copy.ident], (
            f"{copy.ident} on {copy.host} would run an older state "
            f"({copy.version} < {self.latest[copy.ident]})"
        )
        copy.status = "running"
        copy.version = self.latest[copy.ident] = copy.version + 1

    def _source(self) -> SourceTransfer | None:
        machine = self.S.machine
        assert machine is None or isinstance(machine, SourceTransfer)
        return machine

    def _target(self) -> TargetTransfer | None:
        machine = self.T.machine
        assert machine is None or isinstance(machine, TargetTransfer)
        return machine

    def _feed_source(self, event: Event) -> None:
        machine = self._source()
        assert machine is not None
        hypothesis.event(f"source {machine.state.value} <- {event.value}")
        for action in machine.handle(event):
            self._source_action(action)

    def _feed_target(self, event: Event) -> None:
        machine = self._target()
        assert machine is not None
        hypothesis.event(f"target {machine.state.value} <- {event.value}")
        for action in machine.handle(event):
            self._target_action(action)

    def _source_action(self, action: Action) -> None:
        S, T = self.S, self.T
        if action is A.SEND_ENVELOPE:
            self._send(S_HOST, T_HOST, "envelope", self.snapshot)
        elif action in (A.WRITE_COMMIT, A.WRITE_ABORT):
            S.pending_write = "committed" if action is A.WRITE_COMMIT else "aborted"
        elif action is A.SEND_COMMIT:
            self._send(S_HOST, T_HOST, "commit")
        elif action is A.SEND_ABORT:
            self._send(S_HOST, T_HOST, "abort")
        elif action is A.SEND_FORGET:
            self._send(S_HOST, T_HOST, "forget")
        elif action is A.RELEASE_COPY:
            assert T.durable.get("target") == "executed", (
                "released the source copy before the target executed"
            )
            copy = self._copy(S_HOST, "orig")
            assert copy is not None
            assert copy.status == "paused"
            self.copies.remove(copy)
        elif action is A.FINISH_CLONE:
            assert self.kind == "clone"
            assert T.durable.get("target") == "executed"
            self.cloned_hooks += 1
            assert self.cloned_hooks == 1, "the cloned hook ran twice"
            copy = self._copy(S_HOST, "orig")
            if copy is not None and copy.status == "paused":
                self._run(copy)
        elif action is A.RESUME_COPY:
            copy = self._copy(S_HOST, "orig")
            assert copy is not None
            assert copy.status == "paused"
            if self.kind != "clone":
                assert T.durable.get("target") != "executed", "resumed a copy that the target executed"
            self._run(copy)
        elif action is A.HOLD_COPY:
            assert self.kind != "clone"
            copy = self._copy(S_HOST, "orig")
            assert copy is not None
            assert copy.status == "paused"
            copy.status = "held"
        elif action is A.RESTORE_HELD:
            assert T.durable.get("target") != "executed", "restored a held copy that the target executed"
            copy = self._copy(S_HOST, "orig")
            assert copy is not None
            assert copy.status == "held"
            self._run(copy)
            S.durable.pop("source", None)  # dropped with a sync before the held copy goes
        elif action is A.DROP_HELD:
            assert T.durable.get("target") == "executed", "dropped a held copy that the target did not run"
            copy = self._copy(S_HOST, "orig")
            assert copy is not None
            assert copy.status == "held"
            self.copies.remove(copy)
        elif action is A.LOST:
            assert self._copy(S_HOST, "orig") is None
            # a loss that a crash caused, or a stale record come back whose paglet runs on the target
            assert self.lossy["orig"] or self._copy(T_HOST, "orig") is not None, "reported a loss for nothing"
        elif action is A.ANSWER_SUCCESS:
            assert T.durable.get("target") == "executed", "told the caller success without an executed record"
            self.answers.append("success")
        elif action is A.ANSWER_FAILURE:
            assert T.durable.get("target") != "executed", "told the caller failure but the target executed"
            self.answers.append("failure")
        elif action is A.ANSWER_IN_DOUBT:
            self.answers.append("in_doubt")
        elif action is A.DROP_RECORD:
            outcome = S.durable.pop("source", None)
            if outcome is not None:
                S.unsynced_drops["source"] = outcome
        else:  # pragma: no cover
            raise AssertionError(f"unexpected source action {action}")

    def _target_action(self, action: Action) -> None:
        T = self.T
        if action is A.ANSWER_PREPARED or action is A.ANSWER_REFUSED:
            answer = "prepared" if action is A.ANSWER_PREPARED else "refused"
            for inc in T.deferred_env:
                self.net.append(Msg("env_reply", T_HOST, S_HOST, inc, T.inc, (answer,)))
            T.deferred_env.clear()
        elif action is A.WRITE_EXECUTED:
            T.pending_write = "executed"
        elif action is A.START_RUN:
            copy = self._copy(T_HOST, self.moved)
            assert copy is not None
            assert copy.status == "prepared"
            self._run(copy)
        elif action is A.ANSWER_EXECUTED:
            for inc in T.deferred_commit:
                self.net.append(Msg("commit_reply", T_HOST, S_HOST, inc, T.inc, ("executed",)))
            T.deferred_commit.clear()
        elif action is A.DISCARD_COPY:
            copy = self._copy(T_HOST, self.moved)
            assert copy is not None
            assert copy.status == "prepared"
            self.copies.remove(copy)
        elif action is A.QUERY_SOURCE:
            self._send(T_HOST, S_HOST, "query")
        elif action is A.DROP_RECORD:
            outcome = T.durable.pop("target", None)
            if outcome is not None:
                T.unsynced_drops["target"] = outcome
        else:  # pragma: no cover
            raise AssertionError(f"unexpected target action {action}")

    # --- the network -------------------------------------------------------------------------------------

    def _deliver(self, msg: Msg) -> None:
        dst = self.hosts[msg.dst]
        if not dst.up or dst.inc != msg.dst_inc:
            return  # the connection died with the process it was made to
        handler = getattr(self, f"_on_{msg.kind}")
        handler(msg)

    def _on_envelope(self, msg: Msg) -> None:
        T = self.T
        machine = self._target()
        if machine is None:
            T.machine = TargetTransfer(self.tid, "p", S_HOST, self.kind)  # type: ignore[arg-type]
            T.preparing = msg.data[0]
            T.deferred_env.append(msg.src_inc)
            return
        self._feed_target(E.ENVELOPE)
        if machine.state in (TargetState.PREPARING, TargetState.CANCELLED):
            T.deferred_env.append(msg.src_inc)
        elif machine.state in (TargetState.ABORTED, TargetState.FORGOTTEN):
            self._reply(msg, "env_reply", "refused")
        else:
            self._reply(msg, "env_reply", "prepared")

    def _on_commit(self, msg: Msg) -> None:
        machine = self._target()
        if machine is None:
            self._reply(msg, "commit_reply", "unknown")
            return
        before = machine.state
        self._feed_target(E.COMMIT)
        if before is TargetState.PREPARED and machine.state is TargetState.EXECUTING:
            self.T.deferred_commit.append(msg.src_inc)
        else:
            self._reply(msg, "commit_reply", machine.status)

    def _on_abort(self, msg: Msg) -> None:
        machine = self._target()
        if machine is None:  # a tombstone: an envelope that comes later is refused
            machine = self.T.machine = TargetTransfer(self.tid, "p", S_HOST, state=TargetState.ABORTED)
        self._feed_target(E.ABORT)
        self._reply(msg, "abort_reply", machine.status)

    def _on_forget(self, msg: Msg) -> None:
        if self._target() is not None:
            self._feed_target(E.FORGET)

    def _on_query(self, msg: Msg) -> None:
        machine = self._source()
        status = "unknown" if machine is None else machine.status
        self._reply(msg, "query_reply", status, self.S.incarnation())

    def _on_env_reply(self, msg: Msg) -> None:
        if self._source() is not None:
            self._feed_source(E.PREPARED if msg.data[0] == "prepared" else E.REFUSED)

    def _on_commit_reply(self, msg: Msg) -> None:
        if self._source() is not None:
            self._feed_source(target_answer_event(msg.data[0]))

    def _on_abort_reply(self, msg: Msg) -> None:
        if self._source() is not None:
            status = msg.data[0]
            self._feed_source(E.ABORT_ACKED if status in ("aborted", "unknown") else E.NO_ANSWER)

    def _on_query_reply(self, msg: Msg) -> None:
        if self._target() is not None:
            self._feed_target(source_answer_event(self.tid, msg.data[0], msg.data[1]))

    @precondition(lambda self: self.net)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        msg = self.net.pop(data.draw(st.integers(0, len(self.net) - 1), label="deliver"))
        self._deliver(msg)

    @precondition(lambda self: self.net)
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        self.net.pop(data.draw(st.integers(0, len(self.net) - 1), label="lose"))

    @precondition(lambda self: self.net and len(self.net) < 12)
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        msg = self.net[data.draw(st.integers(0, len(self.net) - 1), label="duplicate")]
        self.net.append(Msg(msg.kind, msg.src, msg.dst, msg.dst_inc, msg.src_inc, msg.data))

    # --- local steps -------------------------------------------------------------------------------------

    @precondition(lambda self: self.T.up and self.T.preparing is not None)
    @rule(ok=st.booleans())
    def finish_prepare(self, ok: bool) -> None:
        T = self.T
        version, T.preparing = T.preparing, None
        assert version is not None
        if ok:
            assert self._copy(T_HOST, self.moved) is None, "two prepared copies on the target"
            self.copies.append(Copy(T_HOST, self.moved, "prepared", version))
            self._feed_target(E.READY)
        else:
            self._feed_target(E.FAILED)

    @precondition(lambda self: any(h.up and h.pending_write for h in self.hosts.values()))
    @rule(data=st.data())
    def finish_write(self, data: st.DataObject) -> None:
        host = data.draw(st.sampled_from([h for h in self.hosts.values() if h.up and h.pending_write]))
        outcome, host.pending_write = host.pending_write, None
        assert outcome is not None
        role = "source" if host.name == S_HOST else "target"
        host.durable[role] = outcome
        host.unsynced_drops.pop(role, None)
        if host.name == S_HOST:
            self._feed_source(E.WRITTEN)
        else:
            self._feed_target(E.WRITTEN)

    @precondition(lambda self: self.S.up and self.S.machine is not None)
    @rule()
    def source_timer(self) -> None:
        machine = self._source()
        assert machine is not None
        if machine.state is SourceState.PREPARING and self.attempts >= ENVELOPE_ATTEMPTS:
            self._feed_source(E.PREPARE_FAILED)
            return
        if machine.state is SourceState.PREPARING:
            self.attempts += 1
            # The source sends its envelope attempts one after another over HTTP: it gives up on an
            # attempt (and closes its connection) before it sends the next, so no answer to an earlier
            # attempt can reach it any more. (The earlier request itself may still reach the target.)
            self.net = [m for m in self.net if not (m.kind == "env_reply" and m.dst == S_HOST)]
        self._feed_source(E.TIMEOUT)

    @precondition(
        lambda self: (
            self.S.up
            and isinstance(self.S.machine, SourceTransfer)
            and self.S.machine.state is SourceState.COMMITTING
        )
    )
    @rule()
    def caller_deadline(self) -> None:
        self._feed_source(E.GIVE_UP)

    @precondition(lambda self: self.T.up and self.T.machine is not None)
    @rule()
    def target_timer(self) -> None:
        self._feed_target(E.TIMEOUT)

    @precondition(lambda self: isinstance(self.S.machine, SourceTransfer) and self.S.machine.final)
    @rule()
    def evict_source(self) -> None:
        self.S.machine = None

    @precondition(
        lambda self: (
            isinstance(self.T.machine, TargetTransfer)
            and self.T.machine.state in (TargetState.ABORTED, TargetState.FORGOTTEN)
            # a tombstone outlives every request that can still be on its way (the server's request timeout)
            and not any(m.kind == "envelope" and m.dst_inc == self.T.inc for m in self.net)
        )
    )
    @rule()
    def evict_target(self) -> None:
        self.T.machine = None

    # --- crashes -----------------------------------------------------------------------------------------

    @precondition(lambda self: self.S.up or self.T.up)
    @rule(which=st.sampled_from([S_HOST, T_HOST]), landed=st.booleans(), back=st.booleans())
    def crash(self, which: str, landed: bool, back: bool) -> None:
        host = self.hosts[which]
        if not host.up:
            return
        role = "source" if which == S_HOST else "target"
        host.up = False
        if which == S_HOST and self.cloned_hooks == 0:
            self.hook_run_ended = True
        host.machine = None
        if host.pending_write is not None and landed:
            host.durable[role] = host.pending_write
            host.unsynced_drops.pop(role, None)
        host.pending_write = None
        if back and role in host.unsynced_drops:  # a drop without a sync may not have reached the disk
            host.durable.setdefault(role, host.unsynced_drops[role])
        host.unsynced_drops.clear()
        host.preparing = None
        host.deferred_env.clear()
        host.deferred_commit.clear()
        dead = [c for c in self.copies if c.host == which and c.status not in ("held", "saved")]
        self.copies = [c for c in self.copies if c not in dead]
        for copy in dead:
            if not self._designated_left(copy.ident):
                self.lossy[copy.ident] = True

    @precondition(lambda self: self.S.up or self.T.up)
    @rule(which=st.sampled_from([S_HOST, T_HOST]))
    def stop(self, which: str) -> None:
        """A graceful stop (``shutdown()``): what is in progress finishes, the source machine is told, the
        running paglets are saved; then the host is down as after a crash."""
        host = self.hosts[which]
        if not host.up:
            return
        self._finish_writes(host)
        if which == S_HOST and self._source() is not None:
            self._feed_source(E.SHUTDOWN)
            self._finish_writes(host)
            paused = [c for c in self.copies if c.host == S_HOST and c.status == "paused"]
            assert not paused, f"a graceful stop leaves a paused copy to die: {paused}"
        lossy = dict(self.lossy)
        for copy in self.copies:
            if copy.host == which and copy.status == "running":
                copy.status = "saved"
        self.crash(which, landed=True, back=False)
        if which == S_HOST:
            assert self.lossy == lossy, "a graceful stop of the source lost the paglet"

    def _finish_writes(self, host: HostModel) -> None:
        while host.pending_write is not None:
            outcome, host.pending_write = host.pending_write, None
            role = "source" if host.name == S_HOST else "target"
            host.durable[role] = outcome
            host.unsynced_drops.pop(role, None)
            if role == "source":
                self._feed_source(E.WRITTEN)
            else:
                self._feed_target(E.WRITTEN)

    def _designated_left(self, ident: str) -> bool:
        """Whether a copy of ``ident`` that the durable state still counts on survives."""
        left = [c for c in self.copies if c.ident == ident]
        if self.T.durable.get("target") == "executed" and ident == self.moved:
            return any(c.host == T_HOST for c in left)
        if self.S.durable.get("source") == "aborted" or (ident == "orig" and self.kind == "clone"):
            return any(c.host == S_HOST for c in left)
        machine = self.S.machine
        if isinstance(machine, SourceTransfer) and machine.state in (SourceState.ABORTED,):
            return any(c.host == S_HOST for c in left)
        return bool(left)

    @precondition(lambda self: not (self.S.up and self.T.up))
    @rule(which=st.sampled_from([S_HOST, T_HOST]))
    def restart(self, which: str) -> None:
        self._restart(self.hosts[which])

    def _restart(self, host: HostModel) -> None:
        if host.up:
            return
        host.up = True
        host.inc += 1
        for copy in self.copies:
            if copy.host == host.name and copy.status == "saved":
                self._run(copy)  # activated on startup
        held = self._copy(host.name, "orig")
        held = held if held is not None and held.status == "held" else None
        if host.name == S_HOST and "source" in host.durable:
            host.machine = SourceTransfer.recovered(
                self.tid,
                "p",
                T_HOST,
                self.kind,  # type: ignore[arg-type]
                host.durable["source"],
                held=held is not None,
            )
        elif held is not None:  # no decision left: a restore that did not finish
            self._run(held)
        elif host.name == T_HOST and "target" in host.durable:
            host.machine = TargetTransfer.recovered(self.tid, "p", S_HOST, self.kind)  # type: ignore[arg-type]

    # --- invariants --------------------------------------------------------------------------------------

    @invariant()
    def one_running_copy(self) -> None:
        for ident in ("orig", "clone"):
            running = [c for c in self.copies if c.ident == ident and c.status == "running"]
            assert len(running) <= 1, f"two running copies of {ident}: {running}"

    @invariant()
    def at_most_one_prepared(self) -> None:
        assert len([c for c in self.copies if c.status == "prepared"]) <= 1

    @rule()
    def heal(self) -> None:
        """Every host up, the network delivers everything, every step finishes: the transfer settles."""
        for _round in range(60):
            for host in self.hosts.values():
                self._restart(host)
            if self.T.preparing is not None:
                self.finish_prepare(True)
            for host in self.hosts.values():
                if host.pending_write is not None:
                    outcome, host.pending_write = host.pending_write, None
                    role = "source" if host.name == S_HOST else "target"
                    host.durable[role] = outcome
                    host.unsynced_drops.pop(role, None)
                    if role == "source":
                        self._feed_source(E.WRITTEN)
                    else:
                        self._feed_target(E.WRITTEN)
            while self.net:
                self._deliver(self.net.pop(0))
            if self._settled():
                break
            source, target = self._source(), self._target()
            if source is not None and not source.final:
                if source.state is SourceState.COMMITTING and _round > 3:
                    self._feed_source(E.GIVE_UP)
                else:
                    self.source_timer()
            elif target is not None and target.state in (TargetState.PREPARED, TargetState.EXECUTED):
                self._feed_target(E.TIMEOUT)
        assert self._settled(), f"not settled: source {self._source()}, target {self._target()}"
        self._check_outcome()

    def _settled(self) -> bool:
        source, target = self._source(), self._target()
        return (
            not self.net
            and self.T.preparing is None
            and all(h.pending_write is None for h in self.hosts.values())
            and (source is None or source.final)
            and (target is None or target.state in (TargetState.ABORTED, TargetState.FORGOTTEN))
            and "target" not in self.T.durable
            and "source" not in self.S.durable
            and not any(c.status in ("held", "saved") for c in self.copies)
        )

    def _check_outcome(self) -> None:
        assert not [c for c in self.copies if c.status in ("paused", "prepared")], self.copies
        idents = ("orig", "clone") if self.kind == "clone" else ("orig",)
        for ident in idents:
            running = [c for c in self.copies if c.ident == ident and c.status == "running"]
            if ident == "clone":
                assert len(running) <= 1
                if running and not self.lossy["orig"] and not self.hook_run_ended:
                    assert self.cloned_hooks == 1, "the clone exists, but the cloned hook did not run"
                if "success" in self.answers and not self.lossy["clone"]:
                    assert running, "the caller was told the clone exists, but it does not"
                if "failure" in self.answers:
                    assert not running, "the caller was told the clone failed, but it exists"
                continue
            if not running:
                assert self.lossy[ident], "the paglet was lost without the crash that the design allows"
                continue
            if self.kind == "clone":
                assert running[0].host == S_HOST
            elif "success" in self.answers:
                assert running[0].host == T_HOST
            elif "failure" in self.answers:
                assert running[0].host == S_HOST

    def teardown(self) -> None:
        if hasattr(self, "hosts"):
            self.heal()


_EXAMPLES = int(os.environ.get("PAGLETS_TRANSFER_EXAMPLES", "2000"))
TransferWorld.TestCase.settings = settings(
    max_examples=_EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_transfer_world = TransferWorld.TestCase


# --- the table itself ------------------------------------------------------------------------------------


def test_every_action_belongs_to_a_transition() -> None:
    for role, state, event in ACTIONS:
        assert event in TRANSITIONS[(role, state)], (role, state, event)


def test_every_state_has_a_row() -> None:
    for state in SourceState:
        assert (Role.SOURCE, state) in TRANSITIONS
    for state in TargetState:
        assert (Role.TARGET, state) in TRANSITIONS


def test_driver_events_outside_the_table_raise() -> None:
    machine = SourceTransfer("0" * 32, "p", "T")
    with pytest.raises(TransferStateError, match="cannot take event 'written'"):
        machine.handle(E.WRITTEN)
    assert machine.handle(E.EXECUTED) == []  # a late answer is ignored
    assert machine.state is SourceState.PREPARING


def test_unknown_from_a_restarted_source_commits_and_from_a_running_one_aborts() -> None:
    tid = "1" * 16 + "2" * 16
    assert source_answer_event(tid, "unknown", "1" * 16) is E.SOURCE_UNKNOWN_SAME
    assert source_answer_event(tid, "unknown", "3" * 16) is E.SOURCE_UNKNOWN_RESTARTED
    target = TargetTransfer(tid, "p", "S", state=TargetState.PREPARED)
    assert target.handle(E.SOURCE_UNKNOWN_SAME) == [A.DISCARD_COPY]
    target = TargetTransfer(tid, "p", "S", state=TargetState.PREPARED)
    assert target.handle(E.SOURCE_UNKNOWN_RESTARTED) == [A.WRITE_EXECUTED]


def test_the_happy_path_has_two_writes() -> None:
    source = SourceTransfer("0" * 32, "p", "T")
    target = TargetTransfer("0" * 32, "p", "S")
    writes = 0
    assert target.handle(E.READY) == [A.ANSWER_PREPARED]
    actions = source.handle(E.PREPARED)
    writes += actions.count(A.WRITE_COMMIT)
    assert source.handle(E.WRITTEN) == [A.SEND_COMMIT]
    actions = target.handle(E.COMMIT)
    writes += actions.count(A.WRITE_EXECUTED)
    assert target.handle(E.WRITTEN) == [A.START_RUN, A.ANSWER_EXECUTED]
    assert source.handle(E.EXECUTED) == [A.RELEASE_COPY, A.SEND_FORGET, A.ANSWER_SUCCESS, A.DROP_RECORD]
    assert target.handle(E.FORGET) == [A.DROP_RECORD]
    assert writes == 2


def test_a_commit_in_doubt_answers_once_and_resolves_later() -> None:
    source = SourceTransfer("0" * 32, "p", "T", state=SourceState.COMMITTING)
    assert source.handle(E.NO_ANSWER) == []
    assert source.handle(E.GIVE_UP) == [A.ANSWER_IN_DOUBT]
    assert source.status == "committed"
    assert source.handle(E.UNKNOWN) == [A.RESUME_COPY, A.DROP_RECORD]


def test_a_recovered_source_whose_target_lost_the_copy_reports_the_loss() -> None:
    source = SourceTransfer.recovered("0" * 32, "p", "T", "dispatch", "committed")
    assert source.handle(E.UNKNOWN) == [A.LOST, A.DROP_RECORD]


def test_a_graceful_stop_holds_an_in_doubt_copy_and_the_restart_restores_or_drops_it() -> None:
    source = SourceTransfer("0" * 32, "p", "T", state=SourceState.COMMITTING)
    assert source.handle(E.SHUTDOWN) == [A.ANSWER_IN_DOUBT, A.HOLD_COPY]
    assert source.held
    assert source.handle(E.SHUTDOWN) == []  # once
    lost = SourceTransfer.recovered("0" * 32, "p", "T", "dispatch", "committed", held=True)
    assert lost.handle(E.UNKNOWN) == [A.RESTORE_HELD, A.DROP_RECORD]
    ran = SourceTransfer.recovered("0" * 32, "p", "T", "dispatch", "committed", held=True)
    assert ran.handle(E.EXECUTED) == [A.DROP_HELD, A.SEND_FORGET, A.DROP_RECORD]


def test_a_graceful_stop_while_sending_the_envelope_decides_abort() -> None:
    source = SourceTransfer("0" * 32, "p", "T")
    assert source.handle(E.SHUTDOWN) == [A.WRITE_ABORT]
    assert source.handle(E.WRITTEN) == [A.RESUME_COPY, A.ANSWER_FAILURE, A.SEND_ABORT]


def test_a_clone_confirmed_after_its_in_doubt_answer_runs_the_cloned_hook_once() -> None:
    source = SourceTransfer("0" * 32, "p", "T", kind="clone", state=SourceState.COMMITTING)
    assert source.handle(E.GIVE_UP) == [A.RESUME_COPY, A.ANSWER_IN_DOUBT]
    assert source.handle(E.EXECUTED) == [A.FINISH_CLONE, A.SEND_FORGET, A.DROP_RECORD]
    assert source.handle(E.EXECUTED) == []
    recovered = SourceTransfer.recovered("0" * 32, "p", "T", "clone", "committed")
    assert recovered.handle(E.EXECUTED) == [A.SEND_FORGET, A.DROP_RECORD]  # that run's process is gone
