"""The hand-over of a paglet between two hosts, as a pure state machine: only this file decides transitions.

No I/O here (no asyncio, sockets or files): a driver feeds events (an answer arrived, a durable write
finished, a timer fired) into a machine and performs the actions it returns (send a request, write or
drop a durable record, resume or release the paused copy, start ``run()``, answer the caller). One
transfer has one machine on each side: ``SourceTransfer`` on the host the paglet leaves, and
``TargetTransfer`` on the host it goes to. The table ``TRANSITIONS`` maps ``(role, state)`` to
``{event: next state}``; ``ACTIONS`` says what each transition asks of the driver.

The protocol (``proto/PROTOCOL.md`` §6.1):

1. The source pauses its copy and sends the envelope; the target prepares a copy (arrival hook, no
   ``run()``) and answers *prepared*.
2. The source writes its decision ``committed`` durably (write #1), then sends the commit. Its paused copy
   and mailbox stay.
3. The target writes ``executed`` durably (write #2), then starts ``run()`` and answers *executed*.
4. The source releases its copy, drops its decision and tells the target to forget (best effort); the
   target drops its record once told, or once the source says it knows nothing of the transfer.

A source that gives up before deciding commit writes the decision ``aborted`` durably (unless the target
refused the envelope, in which case it holds no copy), resumes its copy and tells the target. A source
that cannot get the commit acknowledged tells its caller the move is *in doubt* and keeps asking: the
answer *executed* releases the paused copy; *unknown* or *aborted* (the target lost its prepared copy in a
crash) resumes it.

**Graceful stop** (``SHUTDOWN``, fed once the host's short wait for open transfers ran out). A source still
sending the envelope decides abort (its copy resumes and is saved like any active paglet). A source that
decided commit but has no answer yet keeps its paused copy as a *held copy*: its state and waiting
messages are written durably beside the transfer record (``HOLD_COPY``), not as an inactive paglet (the
target may run it). After the restart the machine is recovered with ``held``: *executed* drops the held
copy (``DROP_HELD``); *unknown* makes it the paglet again (``RESTORE_HELD``) instead of reporting it lost.

**Unknown answers.** A source answers a target's question with ``unknown`` only when it has no record and
nothing in flight for the transfer. Transfer ids start with the source's *incarnation* (16 hex digits
drawn at every host start, see ``new_transfer_id``), and the answer carries the current one:

- same incarnation: the source has run all along, so it decided abort and dropped the record after the
  target acknowledged (a commit decision is never dropped before the target executed): the target
  discards its copy (presumed abort);
- another incarnation: the source restarted before deciding anything (a durable decision would have
  answered), so its copy was still paused when it died: the target's prepared copy is the paglet, with
  the exact state the source last had, and commits.

A source copy resumes only after a durable abort decision (or a refusal, when the target holds no copy),
so a target never commits a copy older than one that ran. The transport never delivers a request sent to
an earlier incarnation of a host (each request travels on a TCP connection to one process).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Final, Literal

from paglets.core.errors import TransferError

__all__ = [
    "ACTIONS",
    "TRANSITIONS",
    "Action",
    "Event",
    "MoveKind",
    "Role",
    "SourceState",
    "SourceTransfer",
    "TargetState",
    "TargetTransfer",
    "TransferStateError",
    "incarnation_of",
    "new_incarnation",
    "new_transfer_id",
    "source_answer_event",
    "target_answer_event",
]

MoveKind = Literal["dispatch", "clone", "retract"]

#: Hex digits of a host incarnation (the first half of every transfer id it chooses).
INCARNATION_DIGITS: Final = 16


class TransferStateError(TransferError):
    """An event that the transfer table does not allow in the machine's state (a driver bug)."""


class Role(StrEnum):
    SOURCE = "source"
    TARGET = "target"


class SourceState(StrEnum):
    PREPARING = "preparing"  # envelope on its way; copy paused; undecided
    DECIDING = "deciding"  # the decision "committed" is being written
    COMMITTING = "committing"  # decided commit (durable); copy paused until the target executed
    IN_DOUBT = "in_doubt"  # as COMMITTING, but the caller was told the move is in doubt
    RELEASED = "released"  # the target executed; copy released (final)
    ABORT_DECIDING = "abort_deciding"  # the decision "aborted" is being written
    ABORTING = "aborting"  # decided abort (durable); copy resumed; telling the target
    ABORTED = "aborted"  # final


class TargetState(StrEnum):
    PREPARING = "preparing"  # envelope received; arrival hook running
    CANCELLED = "cancelled"  # told to abort while preparing; the copy is discarded once prepared
    PREPARED = "prepared"  # copy ready, not running; waiting for the commit
    EXECUTING = "executing"  # commit received; "executed" being written
    EXECUTED = "executed"  # record durable; run() started (final until forgotten)
    ABORTED = "aborted"  # no copy (final)
    FORGOTTEN = "forgotten"  # record dropped (final)


class Event(StrEnum):
    # source: answers from the target
    PREPARED = "prepared"  # the envelope was prepared
    REFUSED = "refused"  # the envelope was refused: the target holds no copy
    EXECUTED = "executed"  # the commit was executed
    PENDING = "pending"  # the target is still preparing or executing
    UNKNOWN = "unknown"  # the target has no copy and never executed (or discarded its copy)
    ABORT_ACKED = "abort_acked"  # the target dropped (or never had) its copy
    # source: driver events
    PREPARE_FAILED = "prepare_failed"  # no answer within the ticket's attempts: the target may hold a copy
    GIVE_UP = "give_up"  # the caller's attempts at the commit ran out
    SHUTDOWN = "shutdown"  # the host stops gracefully (after its short wait for open transfers)
    # target: requests from the source
    ENVELOPE = "envelope"
    COMMIT = "commit"
    ABORT = "abort"
    FORGET = "forget"
    # target: answers from the source (see ``source_answer_event``)
    SOURCE_COMMITTED = "source_committed"
    SOURCE_ABORTED = "source_aborted"
    SOURCE_PENDING = "source_pending"
    SOURCE_RELEASED = "source_released"  # the source knows the target executed
    SOURCE_UNKNOWN_SAME = "source_unknown_same"  # the source ran all along: presumed abort
    SOURCE_UNKNOWN_RESTARTED = "source_unknown_restarted"  # the source restarted before deciding
    # target: driver events
    READY = "ready"  # the arrival hook ran; the copy is prepared
    FAILED = "failed"  # the arrival failed; nothing is left
    # both
    WRITTEN = "written"  # the durable record is on disk
    WRITE_FAILED = "write_failed"
    NO_ANSWER = "no_answer"  # a request got no answer (timeout, connection error)
    TIMEOUT = "timeout"  # time to ask (again)


class Action(StrEnum):
    # source
    SEND_ENVELOPE = "send_envelope"
    WRITE_COMMIT = "write_commit"  # durable decision "committed" (write #1), then feed WRITTEN
    WRITE_ABORT = "write_abort"  # durable decision "aborted", then feed WRITTEN
    SEND_COMMIT = "send_commit"
    SEND_ABORT = "send_abort"
    SEND_FORGET = "send_forget"  # also asks where the paglet settled (its run() returned or it moved on)
    RELEASE_COPY = "release_copy"  # dispatch: end the paused process, forward its waiting messages
    FINISH_CLONE = "finish_clone"  # clone: run the ``cloned`` hook and resume the source copy
    RESUME_COPY = "resume_copy"  # the paused copy runs on (abort; clone in doubt)
    LOST = "lost"  # decided abort, but this host's copy died with an earlier run of the host
    HOLD_COPY = "hold_copy"  # graceful stop: save the paused copy durably as the transfer's held copy
    RESTORE_HELD = "restore_held"  # the target has no copy: the held copy becomes the paglet again
    DROP_HELD = "drop_held"  # the target executed: the held copy is dropped
    ANSWER_SUCCESS = "answer_success"
    ANSWER_FAILURE = "answer_failure"
    ANSWER_IN_DOUBT = "answer_in_doubt"
    # target
    ANSWER_PREPARED = "answer_prepared"
    ANSWER_REFUSED = "answer_refused"
    WRITE_EXECUTED = "write_executed"  # durable record "executed" (write #2), then feed WRITTEN
    START_RUN = "start_run"
    ANSWER_EXECUTED = "answer_executed"
    DISCARD_COPY = "discard_copy"
    QUERY_SOURCE = "query_source"
    # both
    DROP_RECORD = "drop_record"  # lazily, no fsync: a record that reappears after a crash is harmless


S, T, E, A = SourceState, TargetState, Event, Action

#: ``(role, state) -> {event: next state}``. The only place where transfer transitions are decided.
TRANSITIONS: Final[dict[tuple[Role, str], dict[Event, str]]] = {
    (Role.SOURCE, S.PREPARING): {
        E.PREPARED: S.DECIDING,
        E.REFUSED: S.ABORTED,
        E.PREPARE_FAILED: S.ABORT_DECIDING,
        E.PENDING: S.PREPARING,
        E.NO_ANSWER: S.PREPARING,
        E.TIMEOUT: S.PREPARING,
        E.SHUTDOWN: S.ABORT_DECIDING,
    },
    (Role.SOURCE, S.DECIDING): {E.WRITTEN: S.COMMITTING, E.WRITE_FAILED: S.ABORT_DECIDING},
    (Role.SOURCE, S.COMMITTING): {
        E.EXECUTED: S.RELEASED,
        E.UNKNOWN: S.ABORTED,
        E.PENDING: S.COMMITTING,
        E.NO_ANSWER: S.COMMITTING,
        E.TIMEOUT: S.COMMITTING,
        E.GIVE_UP: S.IN_DOUBT,
        E.SHUTDOWN: S.IN_DOUBT,
    },
    (Role.SOURCE, S.IN_DOUBT): {
        E.EXECUTED: S.RELEASED,
        E.UNKNOWN: S.ABORTED,
        E.PENDING: S.IN_DOUBT,
        E.NO_ANSWER: S.IN_DOUBT,
        E.TIMEOUT: S.IN_DOUBT,
        E.SHUTDOWN: S.IN_DOUBT,
    },
    (Role.SOURCE, S.RELEASED): {E.EXECUTED: S.RELEASED, E.SHUTDOWN: S.RELEASED},
    (Role.SOURCE, S.ABORT_DECIDING): {E.WRITTEN: S.ABORTING, E.WRITE_FAILED: S.ABORTING},
    (Role.SOURCE, S.ABORTING): {
        E.ABORT_ACKED: S.ABORTED,
        E.NO_ANSWER: S.ABORTING,
        E.TIMEOUT: S.ABORTING,
        E.SHUTDOWN: S.ABORTING,
    },
    (Role.SOURCE, S.ABORTED): {E.ABORT_ACKED: S.ABORTED, E.SHUTDOWN: S.ABORTED},
    (Role.TARGET, T.PREPARING): {
        E.ENVELOPE: T.PREPARING,
        E.READY: T.PREPARED,
        E.FAILED: T.ABORTED,
        E.COMMIT: T.PREPARING,
        E.ABORT: T.CANCELLED,
        E.SOURCE_ABORTED: T.CANCELLED,
    },
    (Role.TARGET, T.CANCELLED): {
        E.ENVELOPE: T.CANCELLED,
        E.READY: T.ABORTED,
        E.FAILED: T.ABORTED,
        E.COMMIT: T.CANCELLED,
        E.ABORT: T.CANCELLED,
    },
    (Role.TARGET, T.PREPARED): {
        E.ENVELOPE: T.PREPARED,
        E.COMMIT: T.EXECUTING,
        E.SOURCE_COMMITTED: T.EXECUTING,
        E.SOURCE_UNKNOWN_RESTARTED: T.EXECUTING,
        E.ABORT: T.ABORTED,
        E.SOURCE_ABORTED: T.ABORTED,
        E.SOURCE_UNKNOWN_SAME: T.ABORTED,
        E.SOURCE_PENDING: T.PREPARED,
        E.NO_ANSWER: T.PREPARED,
        E.TIMEOUT: T.PREPARED,
    },
    (Role.TARGET, T.EXECUTING): {
        E.WRITTEN: T.EXECUTED,
        E.WRITE_FAILED: T.PREPARED,
        E.ENVELOPE: T.EXECUTING,
        E.COMMIT: T.EXECUTING,
    },
    (Role.TARGET, T.EXECUTED): {
        E.ENVELOPE: T.EXECUTED,
        E.COMMIT: T.EXECUTED,
        E.FORGET: T.FORGOTTEN,
        E.SOURCE_RELEASED: T.FORGOTTEN,
        E.SOURCE_ABORTED: T.FORGOTTEN,  # only after a stale record of the source came back
        E.SOURCE_UNKNOWN_SAME: T.FORGOTTEN,
        E.SOURCE_UNKNOWN_RESTARTED: T.FORGOTTEN,
        E.SOURCE_COMMITTED: T.EXECUTED,
        E.SOURCE_PENDING: T.EXECUTED,
        E.NO_ANSWER: T.EXECUTED,
        E.TIMEOUT: T.EXECUTED,
    },
    (Role.TARGET, T.ABORTED): {E.ENVELOPE: T.ABORTED, E.COMMIT: T.ABORTED, E.ABORT: T.ABORTED},
    (Role.TARGET, T.FORGOTTEN): {},
}

#: What each transition asks of the driver, in order: ``(role, state, event) -> actions``. Transitions
#: not listed ask nothing. ``SourceTransfer``/``TargetTransfer`` adjust the caller answers and the copy
#: actions to what is still there (see ``_filter``).
ACTIONS: Final[dict[tuple[Role, str, Event], tuple[Action, ...]]] = {
    (Role.SOURCE, S.PREPARING, E.PREPARED): (A.WRITE_COMMIT,),
    (Role.SOURCE, S.PREPARING, E.REFUSED): (A.RESUME_COPY, A.ANSWER_FAILURE),
    (Role.SOURCE, S.PREPARING, E.PREPARE_FAILED): (A.WRITE_ABORT,),
    (Role.SOURCE, S.PREPARING, E.TIMEOUT): (A.SEND_ENVELOPE,),
    (Role.SOURCE, S.PREPARING, E.SHUTDOWN): (A.WRITE_ABORT,),
    (Role.SOURCE, S.DECIDING, E.WRITTEN): (A.SEND_COMMIT,),
    (Role.SOURCE, S.DECIDING, E.WRITE_FAILED): (A.WRITE_ABORT,),
    (Role.SOURCE, S.COMMITTING, E.EXECUTED): (
        A.RELEASE_COPY,
        A.FINISH_CLONE,
        A.SEND_FORGET,
        A.ANSWER_SUCCESS,
        A.DROP_RECORD,
    ),
    (Role.SOURCE, S.COMMITTING, E.UNKNOWN): (A.RESUME_COPY, A.ANSWER_FAILURE, A.DROP_RECORD),
    (Role.SOURCE, S.COMMITTING, E.TIMEOUT): (A.SEND_COMMIT,),
    (Role.SOURCE, S.COMMITTING, E.GIVE_UP): (A.ANSWER_IN_DOUBT,),
    (Role.SOURCE, S.COMMITTING, E.SHUTDOWN): (A.ANSWER_IN_DOUBT, A.HOLD_COPY),
    (Role.SOURCE, S.IN_DOUBT, E.EXECUTED): (A.RELEASE_COPY, A.FINISH_CLONE, A.SEND_FORGET, A.DROP_RECORD),
    (Role.SOURCE, S.IN_DOUBT, E.UNKNOWN): (A.RESUME_COPY, A.DROP_RECORD),
    (Role.SOURCE, S.IN_DOUBT, E.TIMEOUT): (A.SEND_COMMIT,),
    (Role.SOURCE, S.IN_DOUBT, E.SHUTDOWN): (A.HOLD_COPY,),
    (Role.SOURCE, S.ABORT_DECIDING, E.WRITTEN): (A.RESUME_COPY, A.ANSWER_FAILURE, A.SEND_ABORT),
    (Role.SOURCE, S.ABORT_DECIDING, E.WRITE_FAILED): (A.RESUME_COPY, A.ANSWER_FAILURE, A.SEND_ABORT),
    (Role.SOURCE, S.ABORTING, E.ABORT_ACKED): (A.DROP_RECORD,),
    (Role.SOURCE, S.ABORTING, E.TIMEOUT): (A.SEND_ABORT,),
    (Role.TARGET, T.PREPARING, E.READY): (A.ANSWER_PREPARED,),
    (Role.TARGET, T.PREPARING, E.FAILED): (A.ANSWER_REFUSED,),
    (Role.TARGET, T.CANCELLED, E.READY): (A.DISCARD_COPY, A.ANSWER_REFUSED),
    (Role.TARGET, T.CANCELLED, E.FAILED): (A.ANSWER_REFUSED,),
    (Role.TARGET, T.PREPARED, E.ENVELOPE): (A.ANSWER_PREPARED,),
    (Role.TARGET, T.PREPARED, E.COMMIT): (A.WRITE_EXECUTED,),
    (Role.TARGET, T.PREPARED, E.SOURCE_COMMITTED): (A.WRITE_EXECUTED,),
    (Role.TARGET, T.PREPARED, E.SOURCE_UNKNOWN_RESTARTED): (A.WRITE_EXECUTED,),
    (Role.TARGET, T.PREPARED, E.ABORT): (A.DISCARD_COPY,),
    (Role.TARGET, T.PREPARED, E.SOURCE_ABORTED): (A.DISCARD_COPY,),
    (Role.TARGET, T.PREPARED, E.SOURCE_UNKNOWN_SAME): (A.DISCARD_COPY,),
    (Role.TARGET, T.PREPARED, E.TIMEOUT): (A.QUERY_SOURCE,),
    (Role.TARGET, T.EXECUTING, E.WRITTEN): (A.START_RUN, A.ANSWER_EXECUTED),
    (Role.TARGET, T.EXECUTED, E.ENVELOPE): (A.ANSWER_PREPARED,),
    (Role.TARGET, T.EXECUTED, E.COMMIT): (A.ANSWER_EXECUTED,),
    (Role.TARGET, T.EXECUTED, E.FORGET): (A.DROP_RECORD,),
    (Role.TARGET, T.EXECUTED, E.SOURCE_RELEASED): (A.DROP_RECORD,),
    (Role.TARGET, T.EXECUTED, E.SOURCE_ABORTED): (A.DROP_RECORD,),
    (Role.TARGET, T.EXECUTED, E.SOURCE_UNKNOWN_SAME): (A.DROP_RECORD,),
    (Role.TARGET, T.EXECUTED, E.SOURCE_UNKNOWN_RESTARTED): (A.DROP_RECORD,),
    (Role.TARGET, T.EXECUTED, E.TIMEOUT): (A.QUERY_SOURCE,),
    (Role.TARGET, T.ABORTED, E.ENVELOPE): (A.ANSWER_REFUSED,),
}

#: Events that come from the peer or from timers: they may arrive late or twice (lost answers, retried
#: requests, a timer racing a decision). Where the table has no entry for one, it is ignored. Every other
#: event comes from the driver's own steps and must be allowed by the table.
PEER_EVENTS: Final = frozenset(
    {
        E.PREPARED,
        E.REFUSED,
        E.EXECUTED,
        E.PENDING,
        E.UNKNOWN,
        E.ABORT_ACKED,
        E.ENVELOPE,
        E.COMMIT,
        E.ABORT,
        E.FORGET,
        E.SOURCE_COMMITTED,
        E.SOURCE_ABORTED,
        E.SOURCE_PENDING,
        E.SOURCE_RELEASED,
        E.SOURCE_UNKNOWN_SAME,
        E.SOURCE_UNKNOWN_RESTARTED,
        E.NO_ANSWER,
        E.TIMEOUT,
    }
)

#: What a source answers about a transfer (``GET /transfers/{id}``), by state; no machine: ``unknown``.
SOURCE_STATUS: Final[dict[SourceState, str]] = {
    S.PREPARING: "pending",
    S.DECIDING: "pending",  # not announced before it is durable
    S.ABORT_DECIDING: "pending",
    S.COMMITTING: "committed",
    S.IN_DOUBT: "committed",
    S.RELEASED: "released",
    S.ABORTING: "aborted",
    S.ABORTED: "aborted",
}

#: What a target answers about a transfer (to a commit, an abort or a question), by state.
TARGET_STATUS: Final[dict[TargetState, str]] = {
    T.PREPARING: "pending",
    T.CANCELLED: "aborted",
    T.PREPARED: "prepared",
    T.EXECUTING: "pending",
    T.EXECUTED: "executed",
    T.ABORTED: "aborted",
    T.FORGOTTEN: "executed",  # while remembered in memory; "unknown" once that is gone too
}

SOURCE_FINAL: Final = frozenset({S.RELEASED, S.ABORTED})
TARGET_FINAL: Final = frozenset({T.EXECUTED, T.ABORTED, T.FORGOTTEN})


def new_incarnation() -> str:
    """A fresh host incarnation: drawn at every start, it tells a restarted source from a running one."""
    return secrets.token_hex(INCARNATION_DIGITS // 2)


def new_transfer_id(incarnation: str) -> str:
    """A transfer id: the source's incarnation followed by 16 random hex digits (32 in all)."""
    return incarnation + secrets.token_hex(8)


def incarnation_of(transfer_id: str) -> str:
    return transfer_id[:INCARNATION_DIGITS]


def source_answer_event(transfer_id: str, status: str, incarnation: str) -> Event:
    """The target's event for the source's answer about ``transfer_id`` (``status`` as in
    ``SOURCE_STATUS``, ``incarnation`` the source's current one)."""
    if status == "committed":
        return E.SOURCE_COMMITTED
    if status == "aborted":
        return E.SOURCE_ABORTED
    if status == "pending":
        return E.SOURCE_PENDING
    if status == "released":
        return E.SOURCE_RELEASED
    if status == "unknown":
        if incarnation and incarnation == incarnation_of(transfer_id):
            return E.SOURCE_UNKNOWN_SAME
        return E.SOURCE_UNKNOWN_RESTARTED
    return E.NO_ANSWER


def target_answer_event(status: str) -> Event:
    """The source's event for the target's answer to a commit or an abort (``TARGET_STATUS`` words)."""
    if status == "executed":
        return E.EXECUTED
    if status in ("pending", "prepared"):
        return E.PENDING
    if status in ("aborted", "unknown"):
        return E.UNKNOWN  # no copy there, and none ever ran
    return E.NO_ANSWER


def _step(role: Role, state: str, event: Event) -> tuple[str, tuple[Action, ...]] | None:
    """The next state and the actions for ``event``; None for an ignored peer event."""
    row = TRANSITIONS[(role, state)]
    nxt = row.get(event)
    if nxt is None:
        if event in PEER_EVENTS:
            return None
        raise TransferStateError(
            f"{role.value} transfer in state {state!r} cannot take event {event.value!r}"
        )
    return nxt, ACTIONS.get((role, state, event), ())


@dataclass(slots=True)
class SourceTransfer:
    """The source's side of one transfer.

    ``caller_waiting``: someone waits for the outcome (false for a transfer recovered at start);
    ``holds_copy``: the paused copy is on this host (false after a restart, or once resumed or released);
    ``held``: the paused copy was saved at a graceful stop as the transfer's held copy (``HOLD_COPY``);
    ``hook_owed``: a clone's ``cloned`` hook has yet to run (``FINISH_CLONE``); false for a machine
    recovered at start (the process that cloned ended with the previous run, and a record that comes back
    after a crash must not run the hook again).
    """

    transfer_id: str
    agent_id: str
    peer: str
    kind: MoveKind = "dispatch"
    state: SourceState = S.PREPARING
    caller_waiting: bool = True
    holds_copy: bool = True
    held: bool = False
    hook_owed: bool = True

    role: ClassVar[Role] = Role.SOURCE

    @classmethod
    def recovered(
        cls, transfer_id: str, agent_id: str, peer: str, kind: MoveKind, outcome: str, *, held: bool = False
    ) -> SourceTransfer:
        """The machine for a durable decision found at start: its copy died with the previous run, unless
        a graceful stop saved it as the transfer's held copy (``held``, only with ``committed``)."""
        state = S.IN_DOUBT if outcome == "committed" else S.ABORTING
        return cls(
            transfer_id,
            agent_id,
            peer,
            kind,
            state,
            caller_waiting=False,
            holds_copy=False,
            held=held and outcome == "committed",
            hook_owed=False,
        )

    @property
    def status(self) -> str:
        return SOURCE_STATUS[self.state]

    def at(self, *states: SourceState) -> bool:
        """Whether the machine is in one of ``states`` (a call, so that checks after an await are not
        narrowed away by a type checker)."""
        return self.state in states

    @property
    def final(self) -> bool:
        return self.state in SOURCE_FINAL

    def handle(self, event: Event) -> list[Action]:
        step = _step(Role.SOURCE, self.state, event)
        if step is None:
            return []
        nxt, actions = step
        self.state = SourceState(nxt)
        return self._filter(actions)

    def _filter(self, actions: tuple[Action, ...]) -> list[Action]:
        """The table's actions, minus what no longer applies: a caller is answered once; a copy that is
        not here (resumed, released, or dead with an earlier run of this host) is not touched again, but a
        held copy is restored or dropped in its place; the copy actions follow the kind of move. A clone's
        ``FINISH_CLONE`` (its ``cloned`` hook) comes once in the run that cloned, whether the copy is still
        paused (the caller waits) or runs on (the clone was in doubt)."""
        out: list[Action] = []
        clone = self.kind == "clone"
        for action in actions:
            if action in (A.ANSWER_SUCCESS, A.ANSWER_FAILURE, A.ANSWER_IN_DOUBT):
                if not self.caller_waiting:
                    continue
                self.caller_waiting = False
                if action is A.ANSWER_IN_DOUBT and clone and self.holds_copy:
                    # a clone's source copy is not at stake: it runs on while the clone is in doubt
                    out.append(A.RESUME_COPY)
                    self.holds_copy = False
            elif action is A.HOLD_COPY:
                if not self.holds_copy:
                    continue
                self.holds_copy = False
                if clone:  # not at stake: it runs on (and a shutdown saves it like any active paglet)
                    out.append(A.RESUME_COPY)
                    continue
                self.held = True
            elif action is A.FINISH_CLONE:
                if not clone or not (self.hook_owed or self.holds_copy):
                    continue
                self.hook_owed = self.holds_copy = False
            elif action in (A.RELEASE_COPY, A.RESUME_COPY):
                if action is A.RELEASE_COPY and clone:
                    continue
                if not self.holds_copy:
                    if not clone and self.held:
                        self.held = False
                        out.append(A.DROP_HELD if action is A.RELEASE_COPY else A.RESTORE_HELD)
                    elif action is A.RESUME_COPY and not clone:
                        out.append(A.LOST)  # the target has no copy and this one died with the host
                    continue
                self.holds_copy = False
            out.append(action)
        return out


@dataclass(slots=True)
class TargetTransfer:
    """The target's side of one transfer (``kind`` as the envelope says)."""

    transfer_id: str
    agent_id: str
    peer: str
    kind: MoveKind = "dispatch"
    state: TargetState = T.PREPARING

    role: ClassVar[Role] = Role.TARGET

    @classmethod
    def recovered(cls, transfer_id: str, agent_id: str, peer: str, kind: MoveKind) -> TargetTransfer:
        """The machine for an ``executed`` record found at start (its paglet died with the previous run)."""
        return cls(transfer_id, agent_id, peer, kind, T.EXECUTED)

    @property
    def status(self) -> str:
        return TARGET_STATUS[self.state]

    def at(self, *states: TargetState) -> bool:
        """Whether the machine is in one of ``states`` (see ``SourceTransfer.at``)."""
        return self.state in states

    @property
    def final(self) -> bool:
        return self.state in TARGET_FINAL

    def handle(self, event: Event) -> list[Action]:
        step = _step(Role.TARGET, self.state, event)
        if step is None:
            return []
        nxt, actions = step
        self.state = TargetState(nxt)
        return list(actions)
