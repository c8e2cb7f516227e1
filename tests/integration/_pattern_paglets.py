"""Paglets built on ``paglets.patterns`` for the pattern tests (importable by name in paglet processes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CloneEvent
from paglets.core.messages import Message
from paglets.patterns import (
    MeshFanoutMixin,
    MeshFanoutState,
    NotificationMixin,
    NotificationSeverity,
    OperationPaglet,
    TaskPaglet,
    TaskState,
)
from paglets.services.contracts import ServiceOperation


@dataclass(frozen=True)
class SumRequest:
    numbers: list[int] = field(default_factory=list)
    #: "now": complete in run_task; "later": leave running until a ``finish`` message; "fail": raise.
    mode: str = "now"


@dataclass(frozen=True)
class SumResult:
    total: int = 0
    count: int = 0


@dataclass
class SumState(TaskState):
    finished_by: str = ""


class SumTask(TaskPaglet[SumRequest, SumResult, SumState]):
    State = SumState
    Request = SumRequest
    Result = SumResult

    def run_task(self, request: SumRequest) -> SumResult | None:
        if request.mode == "fail":
            raise ValueError("cannot sum that")
        if request.mode == "later":
            return None
        return SumResult(sum(request.numbers), len(request.numbers))

    def handle_task_message(self, message: Message) -> Any | None:
        if message.kind == "finish":
            numbers = list(self.state.request.get("numbers", []))
            self.state.finished_by = "message"
            self.complete_task(SumResult(sum(numbers), len(numbers)))
            return "finished"
        return None


@dataclass(frozen=True)
class AddRequest:
    a: int = 0
    b: int = 0


@dataclass(frozen=True)
class AddReply:
    total: int = 0


@dataclass(frozen=True)
class NoteRequest:
    text: str = ""


ADD = ServiceOperation("add", AddRequest, AddReply)
NOTE = ServiceOperation("note", NoteRequest)


@dataclass
class CalculatorState(PagletState):
    notes: list[str] = field(default_factory=list)


class Calculator(OperationPaglet[CalculatorState]):
    State = CalculatorState
    Operations = (ADD,)

    def operation_handlers(self) -> dict[ServiceOperation[Any, Any], Any]:
        return {ADD: self.add, NOTE: self.note}

    def add(self, request: AddRequest) -> AddReply:
        return AddReply(request.a + request.b)

    def note(self, request: NoteRequest) -> None:
        self.state.notes.append(request.text)

    def handle_operation_message(self, message: Message) -> Any | None:
        if message.kind == "notes":
            return list(self.state.notes)
        return None


@dataclass
class SurveyState(MeshFanoutState):
    #: Host names whose clone stays silent (never reports back).
    silent: list[str] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    child_host: str = ""


class Survey(MeshFanoutMixin, Paglet[SurveyState]):
    """Clones itself to every host; each clone reports its host name and pid's parity to the parent."""

    State = SurveyState

    def handle_message(self, message: Message) -> Any:
        if message.kind == "start":
            self.fanout_reset(timeout=float(message.get_arg("timeout", 10.0)))
            targets = list(message.get_arg("targets", []) or [])
            for host in self.fanout_select_hosts(targets):
                self.fanout_prepare_clone(host)
                try:
                    proxy = self.clone(host.url)
                except Exception as exc:
                    self.fanout_record_error(host.name, str(exc))
                else:
                    self.fanout_record_child_proxy(host.name, proxy)
                finally:
                    self.fanout_finish_clone_prepare()
            return sorted(self.state.pending_hosts)
        if message.kind == "report":
            host = str(message.get_arg("host"))
            self.state.reports[host] = str(message.get_arg("where"))
            self.fanout_record_done(host)
            return True
        if message.kind == "expire":
            self.fanout_expire_pending("no report before the deadline")
            return dict(self.state.errors)
        if message.kind == "cleanup":
            self.fanout_cleanup_children()
            return dict(self.state.cleanup_errors)
        if message.kind == "summary":
            return {
                "role": self.state.role,
                "pending": sorted(self.state.pending_hosts),
                "done": sorted(self.state.done_hosts),
                "errors": dict(self.state.errors),
                "reports": dict(self.state.reports),
                "children": sorted(self.state.child_proxies),
            }
        if message.kind == "whoami":
            return {"role": self.state.role, "host": self.context.name, "target": self.state.target_host_name}
        return self.not_handled()

    def on_clone(self, event: CloneEvent) -> None:
        self.state.child_host = self.context.name

    def run(self) -> None:
        state = self.state
        if state.role != "child" or state.target_host_name in state.silent:
            return
        self.send(
            state.parent_agent_id,
            Message("report", {"host": state.target_host_name, "where": self.context.name}),
            host_url=state.parent_host_url,
        )


@dataclass
class NotifierState(PagletState):
    home: str = ""


class Notifier(NotificationMixin, Paglet[NotifierState]):
    State = NotifierState

    def user_info_host_url(self) -> str:
        return self.state.home

    def handle_message(self, message: Message) -> Any:
        if message.kind == "notify":
            self.state.home = str(message.get_arg("home", ""))
            return self.notify_user_info(
                NotificationSeverity(str(message.get_arg("severity", "info"))),
                str(message.get_arg("title", "")),
                str(message.get_arg("text", "")),
                job_id=str(message.get_arg("job", "")),
                timeout=float(message.get_arg("timeout", 2.0)),
                metadata={"k": "v"},
            )
        return self.not_handled()


@dataclass
class GonerState(PagletState):
    moved: bool = False


class DisposesOnArrival(Paglet[GonerState]):
    """Moves when told to and disposes itself in ``run()`` on the host it arrived at (a worker that
    delivered its result, a traveller at the end of its route)."""

    State = GonerState

    def run(self) -> None:
        if self.state.moved:
            host: Any = self.context.host
            host.dispose(self.agent_id)

    def handle_message(self, message: Message) -> Any:
        if message.kind == "go":
            self.state.moved = True
            return self.dispatch(str(message.arg)).to_wire()
        return self.not_handled()


@dataclass
class CallerState(PagletState):
    role: str = "parent"
    parent_id: str = ""
    heard: list[str] = field(default_factory=list)


class CallsParentFromRun(Paglet[CallerState]):
    """Clones itself to this host a few times in one handler; each clone's ``run()`` at once messages
    the parent, which may be paused for the next clone's snapshot by then."""

    State = CallerState

    def run(self) -> None:
        if self.state.role == "clone":
            self.send(self.state.parent_id, Message("hello", arg=self.agent_id))

    def handle_message(self, message: Message) -> Any:
        if message.kind == "clone":
            made = []
            for _ in range(int(message.get_arg("count", 3))):
                self.state.role, self.state.parent_id = "clone", self.agent_id
                try:
                    made.append(self.clone(self.context.address).agent_id)
                finally:
                    self.state.role = "parent"
            return made
        if message.kind == "hello":
            self.state.heard.append(str(message.arg))
            return True
        if message.kind == "heard":
            return list(self.state.heard)
        return self.not_handled()
