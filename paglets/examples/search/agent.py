"""The mesh search paglet: a parent on the entry host, a clone searching on every host.

``start`` (a :class:`~paglets.examples.search.local.SearchRequest`) checks the pattern, then clones the
paglet to every online host (or the requested ones; :class:`~paglets.patterns.MeshFanoutMixin`). Each
clone searches its host (:func:`~paglets.examples.search.local.search`) and sends its events to the
parent in batches (at most :data:`BATCH_EVENTS` events or :data:`BATCH_BYTES` bytes of text each), then
its summary, and disposes itself. The command reads the events from the parent with a cursor, which
also tells the parent what it may forget; when more than :data:`MAX_BACKLOG` events wait unread, the
parent asks clones to resend a batch a little later, so a slow reader slows the search instead of
filling the memory. Hosts that go away are reported as missing; a ``search.done`` notification goes to
the entry host's ``user-info`` at the end.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.events import PersistencyEvent
from paglets.examples import _jobs
from paglets.examples.search.local import (
    HostSearchSummary,
    SearchEvent,
    SearchRequest,
    compile_pattern,
    search,
)
from paglets.patterns import (
    MeshFanoutMixin,
    MeshFanoutState,
    NotificationMixin,
    NotificationSeverity,
    OperationPaglet,
)
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire
from paglets.services.contracts import EmptyPayload, ServiceOperation

__all__ = [
    "CANCEL_SEARCH",
    "CHILD_DONE",
    "CHILD_EVENTS",
    "READ_SEARCH",
    "SEARCH_CLASS",
    "START_SEARCH",
    "MeshSearchAgent",
    "SearchProgress",
    "SearchReadRequest",
]

SEARCH_CLASS: Final = "paglets.examples.search.agent:MeshSearchAgent"
#: Events per batch a clone sends.
BATCH_EVENTS: Final = 200
#: Bytes of text per batch a clone sends (messages to paglets stay small).
BATCH_BYTES: Final = 32 * 1024
#: Unread events the parent keeps before asking clones to wait.
MAX_BACKLOG: Final = 20_000
#: Events one ``read`` returns at most.
MAX_READ: Final = 2000


@dataclass(frozen=True, slots=True)
class SearchReadRequest:
    #: Cursor of the last event read (the parent forgets events up to it).
    after: int = 0


@dataclass(frozen=True, slots=True)
class SearchProgress:
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    hosts: list[str] = field(default_factory=list)
    pending_hosts: list[str] = field(default_factory=list)
    events: list[SearchEvent] = field(default_factory=list)
    #: Cursor of the last event in ``events`` (pass it as ``after`` next time).
    cursor: int = 0
    #: Events waiting after this reply's.
    more: bool = False
    summaries: dict[str, HostSearchSummary] = field(default_factory=dict)
    #: Host → why it has no (complete) answer.
    errors: dict[str, str] = field(default_factory=dict)
    elapsed_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SearchBatch:
    host: str = ""
    events: list[SearchEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchBatchReply:
    accepted: bool = True
    #: Stop searching (the job ended).
    stop: bool = False


@dataclass(frozen=True, slots=True)
class SearchDone:
    host: str = ""
    summary: HostSearchSummary | None = None
    error: str = ""


START_SEARCH = ServiceOperation("start", SearchRequest, SearchProgress)
READ_SEARCH = ServiceOperation("read", SearchReadRequest, SearchProgress)
CANCEL_SEARCH = ServiceOperation("cancel", EmptyPayload, SearchProgress)
CHILD_EVENTS = ServiceOperation("child_events", SearchBatch, SearchBatchReply)
CHILD_DONE = ServiceOperation("child_done", SearchDone)


@dataclass
class MeshSearchState(MeshFanoutState):
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    summaries: dict[str, HostSearchSummary] = field(default_factory=dict)
    fanned_out: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0


class MeshSearchAgent(MeshFanoutMixin, NotificationMixin, OperationPaglet[MeshSearchState]):
    """Parent and clones of a mesh search (see the module docstring)."""

    State = MeshSearchState
    Operations = (START_SEARCH, READ_SEARCH, CANCEL_SEARCH, CHILD_EVENTS, CHILD_DONE)

    def operation_handlers(self) -> dict[ServiceOperation[Any, Any], Any]:
        return {
            START_SEARCH: self.start,
            READ_SEARCH: self.read,
            CANCEL_SEARCH: self.cancel,
            CHILD_EVENTS: self.child_events,
            CHILD_DONE: self.child_done,
        }

    # --- the parent ----------------------------------------------------------------------------------

    def start(self, request: SearchRequest) -> SearchProgress:
        if self.state.status != _jobs.NEW:
            raise ValueError(f"this search was already started ({self.state.status})")
        if request.mode not in ("grep", "find"):
            raise ValueError(f"unknown search mode {request.mode!r}")
        if request.mode == "grep" and not request.pattern:
            raise ValueError("grep needs a pattern")
        if not 0 < request.timeout <= 86400:
            raise ValueError("timeout must be between 0 and 86400 seconds")
        compile_pattern(request)  # a bad pattern fails here, once, not on every host
        self.fanout_reset(timeout=request.timeout)
        self._events: list[tuple[int, SearchEvent]] = []
        self._cursor = 0
        self._events_lock = threading.Lock()
        with self.locked_state() as state:
            state.job_id = request.job_id or f"search-{uuid.uuid4().hex[:12]}"
            state.status = _jobs.RUNNING
            state.request = dataclass_to_wire(request)
            state.started_at = time.time()
        threading.Thread(target=self._fan_out, args=(request,), name="search-fanout", daemon=True).start()
        _jobs.dispose_later(self, request.timeout + _jobs.LINGER_SECONDS)
        return self.read(SearchReadRequest(0))

    def read(self, request: SearchReadRequest) -> SearchProgress:
        events: list[SearchEvent] = []
        cursor, more = request.after, False
        lock = getattr(self, "_events_lock", None)
        if lock is not None:
            with lock:
                self._events = [(c, e) for c, e in self._events if c > request.after]  # read: forget them
                chosen = self._events[:MAX_READ]
                more = len(self._events) > len(chosen)
            events = [e for _c, e in chosen]
            cursor = chosen[-1][0] if chosen else request.after
        with self.locked_state() as state:
            end = state.finished_at or time.time()
            return SearchProgress(
                job_id=state.job_id,
                status=state.status,
                error=state.error,
                hosts=list(state.hosts),
                pending_hosts=list(state.pending_hosts),
                events=events,
                cursor=cursor,
                more=more,
                summaries=dict(state.summaries),
                errors=dict(state.errors),
                elapsed_seconds=max(0.0, end - state.started_at) if state.started_at else 0.0,
            )

    def cancel(self, _request: EmptyPayload) -> SearchProgress:
        self._finish(_jobs.CANCELLED, "cancelled")
        return self.read(SearchReadRequest(0))

    def child_events(self, batch: SearchBatch) -> SearchBatchReply:
        if self.state.status != _jobs.RUNNING or batch.host not in self.state.pending_hosts:
            return SearchBatchReply(accepted=False, stop=True)
        with self._events_lock:
            if len(self._events) >= MAX_BACKLOG:
                return SearchBatchReply(accepted=False)
            for event in batch.events:
                self._cursor += 1
                self._events.append((self._cursor, event))
        return SearchBatchReply()

    def child_done(self, done: SearchDone) -> None:
        if self.state.status != _jobs.RUNNING or done.host not in self.state.pending_hosts:
            return
        if done.summary is not None:
            with self.locked_state() as state:
                state.summaries[done.host] = done.summary
        if done.error:
            self.fanout_record_error(done.host, done.error)
        else:
            self.fanout_record_done(done.host)
        self._maybe_done()

    def on_activation(self, event: PersistencyEvent) -> None:
        if self.state.role == "parent" and self.state.status == _jobs.RUNNING:
            self.state.status = _jobs.FAILED
            self.state.error = "the search was interrupted (its host saved it to disk)"
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    def _fan_out(self, request: SearchRequest) -> None:
        try:
            for host in self.fanout_select_hosts(list(request.hosts)):
                if self.state.status != _jobs.RUNNING:
                    break
                with self.locked_state() as state:
                    state.hosts.append(host.name)
                self.fanout_prepare_clone(host)
                try:
                    proxy = self.clone(host.url)
                except Exception as exc:
                    self.fanout_record_error(host.name, f"cannot clone there: {exc}")
                else:
                    self.fanout_record_child_proxy(host.name, proxy)
                finally:
                    self.fanout_finish_clone_prepare()
            with self.locked_state() as state:
                state.fanned_out = True
            _jobs.watch_children(self, finished=self._maybe_done)
        except Exception as exc:
            self._finish(_jobs.FAILED, str(exc) or type(exc).__name__)

    def _maybe_done(self) -> bool:
        with self.locked_state() as state:
            finished = state.fanned_out and not state.pending_hosts and state.status == _jobs.RUNNING
        if finished:
            self._finish(_jobs.DONE)
        return self.state.status in _jobs.FINISHED

    def _finish(self, status: str, error: str = "") -> None:
        with self.locked_state() as state:
            if state.status in _jobs.FINISHED:
                return
            state.status = status
            state.error = error
            state.finished_at = time.time()
            job_id = state.job_id
            matches = sum(s.matches + s.paths_matched for s in state.summaries.values())
            hosts, missing = len(state.summaries), len(state.errors)
        self.fanout_cleanup_children()
        text = f"{matches} results from {hosts} host(s), {missing} missing" + (f": {error}" if error else "")
        severity = NotificationSeverity.INFO if status == _jobs.DONE else NotificationSeverity.ERROR
        self.notify_user_info(severity, f"search.{status}", text, job_id=job_id)
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    # --- a clone -------------------------------------------------------------------------------------

    def run(self) -> None:
        if self.state.role != "child":
            return
        host = self.context.name
        parent: Any = self.context.get_proxy(self.state.parent_agent_id, self.state.parent_host_url)
        request = dataclass_from_wire(SearchRequest, dict(self.state.request))
        deadline = time.monotonic() + max(0.5, request.timeout - 1.0)
        done = SearchDone(host=host)
        batch: list[SearchEvent] = []
        size = 0
        try:
            for item in search(request, host, deadline=deadline):
                if isinstance(item, HostSearchSummary):
                    done = SearchDone(host=host, summary=item)
                    break
                batch.append(item)
                size += len(item.text) + len(item.path) + 64
                if len(batch) >= BATCH_EVENTS or size >= BATCH_BYTES:
                    if not self._send(parent, host, batch, deadline):
                        break
                    batch, size = [], 0
            if batch:
                self._send(parent, host, batch, deadline)
        except Exception as exc:
            done = SearchDone(host=host, error=str(exc) or type(exc).__name__)
        try:
            parent.send(CHILD_DONE.to_message(done), timeout=30.0)
        except Exception:
            pass  # the parent is gone: it reports this host as missing
        own: Any = self.context.host
        try:
            own.dispose(self.agent_id)
        except Exception:
            pass

    def _send(self, parent: Any, host: str, events: list[SearchEvent], deadline: float) -> bool:
        """Send one batch, waiting while the parent's backlog is full; False: stop searching."""
        pause = 0.05
        message = CHILD_EVENTS.to_message(SearchBatch(host, list(events)))
        while time.monotonic() < deadline:
            reply = CHILD_EVENTS.decode_reply(parent.send(message, timeout=30.0))
            if reply.stop:
                return False
            if reply.accepted:
                return True
            time.sleep(pause)  # the parent's backlog is full: wait for the reader
            pause = min(1.0, pause * 2)
        return False
