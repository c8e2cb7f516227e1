"""The patterns of paglets.patterns, one small paglet each (run by patterns_run.py)."""

# --8<-- [start:imports]
from paglets.patterns import (
    ChildRoleState,  # paglets.patterns.coordination
    FileMobilityMixin,  # paglets.patterns.file_mobility
    FileTransferMode,  # paglets.patterns.file_mobility
    FileTransferRequest,  # paglets.patterns.file_mobility
    FileTransferResult,  # paglets.patterns.file_mobility
    MeshFanoutMixin,  # paglets.patterns.coordination
    MeshFanoutState,  # paglets.patterns.coordination
    NotificationMixin,  # paglets.patterns.notifications
    NotificationSeverity,  # paglets.patterns.notifications
    OperationClient,  # paglets.patterns.operations
    OperationPaglet,  # paglets.patterns.operations
    SingleFileTransferPaglet,  # paglets.patterns.file_mobility
    TaskClient,  # paglets.patterns.tasks
    TaskPaglet,  # paglets.patterns.tasks
    TaskState,  # paglets.patterns.tasks
    TaskStatus,  # paglets.patterns.tasks
)
# --8<-- [end:imports]

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.services.contracts import ServiceOperation

__all__ = [
    "ChildRoleState",
    "FileMobilityMixin",
    "FileTransferMode",
    "FileTransferRequest",
    "FileTransferResult",
    "OperationClient",
    "SingleFileTransferPaglet",
    "TaskClient",
    "TaskStatus",
]


# --8<-- [start:task]
@dataclass(frozen=True)
class WordCount:
    path: str


@dataclass(frozen=True)
class Counted:
    words: int
    host: str


@dataclass
class CountState(TaskState):
    pass


class Counter(TaskPaglet[WordCount, Counted, CountState]):
    State = CountState
    Request = WordCount
    Result = Counted

    def run_task(self, request: WordCount) -> Counted:
        with open(request.path) as f:
            return Counted(len(f.read().split()), self.context.name)


# --8<-- [end:task]


@dataclass(frozen=True)
class AddRequest:
    amount: int = 0


@dataclass(frozen=True)
class AddReply:
    total: int = 0


@dataclass
class CalcState(PagletState):
    total: int = 0


# --8<-- [start:operations]
ADD = ServiceOperation("add", AddRequest, AddReply)
RESET = ServiceOperation("reset")  # EmptyPayload in and out


class Calculator(OperationPaglet[CalcState]):
    State = CalcState
    Operations = (ADD, RESET)

    def operation_handlers(self):
        return {ADD: self.add, RESET: self.reset}

    def add(self, request: AddRequest) -> AddReply:
        self.state.total += request.amount
        return AddReply(self.state.total)

    def reset(self, _request) -> None:
        self.state.total = 0


# --8<-- [end:operations]


@dataclass
class SurveyState(MeshFanoutState):
    findings: dict[str, str] = field(default_factory=dict)


def look_around(paglet: Paglet[Any]) -> str:
    return f"{paglet.context.name} looked around"


# --8<-- [start:fanout]
class Survey(MeshFanoutMixin, Paglet[SurveyState]):  # the mixin goes first
    State = SurveyState

    def handle_message(self, message):
        if message.kind == "start":
            self.fanout_reset(timeout=30)
            for host in self.fanout_select_hosts([]):  # [] = every online host (same version)
                self.fanout_prepare_clone(host)  # the clone inherits role="child"
                try:
                    self.fanout_record_child_proxy(host.name, self.clone(host.url))
                except Exception as exc:
                    self.fanout_record_error(host.name, str(exc))
                finally:
                    self.fanout_finish_clone_prepare()  # this copy is the parent again
            return sorted(self.state.pending_hosts)
        if message.kind == "report":  # from a clone
            self.state.findings[message.get_arg("host")] = message.get_arg("data")
            self.fanout_record_done(message.get_arg("host"))
            return True
        if message.kind == "findings":
            done = not self.state.pending_hosts
            if done:
                self.fanout_cleanup_children()  # dispose the clones
            return {"done": done, "findings": dict(sorted(self.state.findings.items()))}
        return self.not_handled()

    def run(self):  # in every copy, after creation or cloning
        if self.state.role == "child":
            data = look_around(self)
            self.send(
                self.state.parent_agent_id,
                Message("report", {"host": self.state.target_host_name, "data": data}),
                host_url=self.state.parent_host_url,
            )


# --8<-- [end:fanout]


@dataclass
class JobState(PagletState):
    home_url: str = ""


# --8<-- [start:notify]
class Job(NotificationMixin, Paglet[JobState]):
    State = JobState

    def user_info_host_url(self) -> str:  # optional: where the user is
        return self.state.home_url

    def finished(self) -> None:
        self.notify_user_info(NotificationSeverity.INFO, "job.done", "42 rows written", job_id="j-1")

    # --8<-- [end:notify]

    def handle_message(self, message: Message) -> Any:
        if message.kind == "finish":
            self.finished()
            return True
        return self.not_handled()
