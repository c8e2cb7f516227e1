"""``user-info``: where paglets tell the user something, on the host where the user is.

A paglet working for a user (started by a command line on some host) sends notifications and streamed
output to the ``user-info`` service of *that* host (agent id ``service.user-info``; the command line
passes its entry host's URL along with the work). The service prints each entry on its host's console
and keeps the most recent ones, so the command line that started the work can read them back and print
them where the user ran it.

Operations of the ``user-info`` contract (version 1):

- ``notify`` (:class:`UserInfoRequest` → :class:`UserInfoReply`): one line on the host's stderr,
  ``[time] SEVERITY: title job=... source=...: message``.
- ``stream`` (:class:`UserInfoStreamRequest` → :class:`UserInfoReply`): text written as is to the host's
  stdout or stderr (control characters other than newline, tab and carriage return are dropped).
- ``read`` (:class:`UserInfoReadRequest` → :class:`UserInfoReadReply`): entries after a cursor
  (``since``, a sequence number), optionally of one job only. It never waits: callers poll with the
  ``next_seq`` they got (waiting inside the handler would hold up the notifications it waits for).

Bounds: a text or message is cut to :data:`MAX_TEXT` characters, a title to :data:`MAX_TITLE`; the
service keeps the last :data:`MAX_ENTRIES` entries and at most :data:`MAX_KEPT_CHARS` characters of text
(older ones are dropped first; a reader whose cursor fell behind gets ``dropped = true``). The entries
live in the paglet's state, so they survive the service's idle deactivation and a host restart.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec

__all__ = [
    "MAX_ENTRIES",
    "MAX_TEXT",
    "NOTIFY_USER",
    "READ_USER_INFO",
    "STREAM_USER",
    "USER_INFO",
    "USER_INFO_AGENT_ID",
    "UserInfoAgent",
    "UserInfoEntry",
    "UserInfoReadReply",
    "UserInfoReadRequest",
    "UserInfoReply",
    "UserInfoRequest",
    "UserInfoState",
    "UserInfoStreamRequest",
]

USER_INFO_AGENT_ID: Final = "service.user-info"
#: Longest message or streamed text kept per entry (characters).
MAX_TEXT: Final = 64 * 1024
#: Longest title, severity, job id, source id, stream id (characters).
MAX_TITLE: Final = 200
#: Metadata pairs kept per notification.
MAX_METADATA: Final = 32
#: Entries kept for readers.
MAX_ENTRIES: Final = 1000
#: Characters of text kept over all entries (the state stays well under a few MiB).
MAX_KEPT_CHARS: Final = 1024 * 1024
#: Entries one ``read`` returns at most.
MAX_READ: Final = 1000

#: Terminal escape sequences and control characters other than tab, newline and carriage return.
_CONTROL: Final = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|.)?|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x9b]")


@dataclass(frozen=True, slots=True)
class UserInfoRequest:
    severity: str = "info"
    title: str = ""
    message: str = ""
    source_agent_id: str = ""
    job_id: str = ""
    timestamp: float = 0.0
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserInfoStreamRequest:
    stream_id: str = ""
    text: str = ""
    #: ``"stdout"`` or ``"stderr"`` of the host.
    target: str = "stdout"
    flush: bool = True
    job_id: str = ""
    source_agent_id: str = ""


@dataclass(frozen=True, slots=True)
class UserInfoReply:
    ok: bool = True
    #: Sequence number of the stored entry (readers pass it as ``since`` to get what follows).
    seq: int = 0


@dataclass(frozen=True, slots=True)
class UserInfoEntry:
    seq: int
    timestamp: float
    #: ``"notify"`` or ``"stream"``.
    kind: str
    text: str
    severity: str = ""
    title: str = ""
    job_id: str = ""
    source_agent_id: str = ""
    stream_id: str = ""
    target: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserInfoReadRequest:
    #: Return entries with a sequence number above this one.
    since: int = 0
    #: Only entries of this job ("" = all).
    job_id: str = ""
    limit: int = 200


@dataclass(frozen=True, slots=True)
class UserInfoReadReply:
    entries: list[UserInfoEntry] = field(default_factory=list)
    #: Pass this as ``since`` next time.
    next_seq: int = 0
    #: True when entries after ``since`` were dropped before anyone read them.
    dropped: bool = False


NOTIFY_USER = ServiceOperation("notify", UserInfoRequest, UserInfoReply)
STREAM_USER = ServiceOperation("stream", UserInfoStreamRequest, UserInfoReply)
READ_USER_INFO = ServiceOperation("read", UserInfoReadRequest, UserInfoReadReply)

USER_INFO = ServiceContract("user-info", operations=(NOTIFY_USER, STREAM_USER, READ_USER_INFO))


@dataclass
class UserInfoState(PagletState):
    service_scope: ServiceScope = ServiceScope.MESH
    #: Print entries on the host's console (False: only keep them for readers).
    echo: bool = True
    next_seq: int = 1
    entries: list[UserInfoEntry] = field(default_factory=list)


def _clean(text: object, limit: int, *, keep_lines: bool) -> str:
    value = str(text)[:limit]
    value = _CONTROL.sub("", value)
    return value if keep_lines else value.replace("\n", " ").replace("\r", " ").replace("\t", " ")


class UserInfoAgent(Paglet[UserInfoState]):
    """The ``user-info`` resident service (see the module docstring)."""

    State = UserInfoState
    RESIDENT_SERVICES = (
        ResidentServiceSpec(
            contract=USER_INFO,
            scope=ServiceScope.MESH,
            lifecycle=ResidentLifecycle.LAZY,
            idle_timeout=30.0,
            agent_id=USER_INFO_AGENT_ID,
            singleton=True,
            state={"service_scope": ServiceScope.MESH.value},
        ),
    )

    def handle_message(self, message: Message) -> Any:
        return USER_INFO.route(
            message,
            {NOTIFY_USER: self.notify, STREAM_USER: self.stream, READ_USER_INFO: self.read},
            default=self.not_handled(),
        )

    def notify(self, request: UserInfoRequest) -> UserInfoReply:
        timestamp = request.timestamp if 0 < request.timestamp < 1e11 else time.time()
        severity = _clean(request.severity or "info", 16, keep_lines=False).lower() or "info"
        title = _clean(request.title or "paglets", MAX_TITLE, keep_lines=False)
        text = _clean(request.message, MAX_TEXT, keep_lines=False)
        job = _clean(request.job_id, MAX_TITLE, keep_lines=False)
        source = _clean(request.source_agent_id, MAX_TITLE, keep_lines=False)
        metadata = {
            _clean(k, MAX_TITLE, keep_lines=False): _clean(v, MAX_TITLE, keep_lines=False)
            for k, v in list(request.metadata.items())[:MAX_METADATA]
        }
        if self.state.echo:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
            where = (f" job={job}" if job else "") + (f" source={source}" if source else "")
            print(f"[{stamp}] {severity.upper()}: {title}{where}: {text}", file=sys.stderr, flush=True)
        return self._keep(
            kind="notify",
            timestamp=timestamp,
            text=text,
            severity=severity,
            title=title,
            job_id=job,
            source_agent_id=source,
            metadata=metadata,
        )

    def stream(self, request: UserInfoStreamRequest) -> UserInfoReply:
        target = "stderr" if request.target == "stderr" else "stdout"
        text = _clean(request.text, MAX_TEXT, keep_lines=True)
        if self.state.echo and text:
            out = sys.stderr if target == "stderr" else sys.stdout
            out.write(text)
            if request.flush:
                out.flush()
        return self._keep(
            kind="stream",
            timestamp=time.time(),
            text=text,
            stream_id=_clean(request.stream_id, MAX_TITLE, keep_lines=False),
            target=target,
            job_id=_clean(request.job_id, MAX_TITLE, keep_lines=False),
            source_agent_id=_clean(request.source_agent_id, MAX_TITLE, keep_lines=False),
        )

    def read(self, request: UserInfoReadRequest) -> UserInfoReadReply:
        limit = max(1, min(MAX_READ, int(request.limit)))
        since = max(0, int(request.since))
        with self.locked_state() as state:
            entries = state.entries
            first = entries[0].seq if entries else state.next_seq
            dropped = since + 1 < first and since < state.next_seq - 1
            chosen: list[UserInfoEntry] = []
            last = since
            for entry in entries:
                if entry.seq <= since:
                    continue
                last = entry.seq
                if request.job_id and entry.job_id != request.job_id:
                    continue
                chosen.append(entry)
                if len(chosen) >= limit:
                    break
            next_seq = last if chosen and len(chosen) >= limit else max(since, state.next_seq - 1)
        return UserInfoReadReply(chosen, next_seq, dropped)

    def _keep(self, **fields: Any) -> UserInfoReply:
        with self.locked_state() as state:
            seq = state.next_seq
            state.next_seq = seq + 1
            state.entries.append(UserInfoEntry(seq=seq, **fields))
            total = sum(len(e.text) for e in state.entries)
            while state.entries and (len(state.entries) > MAX_ENTRIES or total > MAX_KEPT_CHARS):
                total -= len(state.entries.pop(0).text)
        return UserInfoReply(True, seq)
