"""The mesh benchmark paglets: a coordinator that stays on the entry host and a traveller that moves.

``start`` (a :class:`MeshBenchmarkRequest`) plans the route (:func:`~.analysis.eulerian_route`, repeated
``repeats`` times) and creates the :class:`MeshBenchmarkTraveller` next to the coordinator. The
traveller carries ``payload_size`` random bytes in its state (incompressible, so they really travel)
and drives itself from ``run()``, which runs on every host it arrives at:

1. it notes the arrival instant first, then probes the coordinator's clock ``clock_probes`` times;
2. it turns the pending departure (noted on the previous host, on that host's clock) and this arrival
   into one hop on the entry host's clock, and reports it to the coordinator (a small message);
3. it picks the next pair of the route, notes the departure instant and dispatches itself there.

A dispatch that fails (the target went away) marks that host dead: the pairs with it are dropped and the
traveller goes on from where it is, with an extra move if the next remaining pair starts elsewhere. The
coordinator keeps the hops as they come (the command reads them with a cursor to show progress) and
computes the summary at the end. When the traveller is lost with a host that went away, the coordinator
sends a new one from the entry host for the pairs not measured yet (without that host).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import PersistencyEvent
from paglets.core.messages import Message
from paglets.examples import _jobs
from paglets.examples.mesh_benchmark.analysis import (
    ClockProbe,
    MeshBenchmarkSummary,
    MeshTravelRecord,
    eulerian_route,
    offset_and_rtt,
    summarize,
)
from paglets.patterns import NotificationMixin, NotificationSeverity, OperationPaglet
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire
from paglets.services.contracts import EmptyPayload, ServiceOperation

__all__ = [
    "CANCEL_BENCHMARK",
    "CLOCK_PROBE",
    "MAX_PAYLOAD",
    "MESH_BENCHMARK_CLASS",
    "READ_BENCHMARK",
    "REPORT_HOP",
    "START_BENCHMARK",
    "TRAVELLER_DONE",
    "MeshBenchmarkCoordinatorAgent",
    "MeshBenchmarkProgress",
    "MeshBenchmarkRequest",
    "MeshBenchmarkTraveller",
]

MESH_BENCHMARK_CLASS: Final = "paglets.examples.mesh_benchmark.agent:MeshBenchmarkCoordinatorAgent"
#: Largest payload a traveller may carry (it is part of its state on every host it visits).
MAX_PAYLOAD: Final = 1 << 30
#: Most moves one run may plan.
MAX_MOVES: Final = 20_000
#: Most clock probes per arrival.
MAX_PROBES: Final = 50
#: Hops one ``read`` returns at most.
MAX_READ: Final = 2000
#: Seconds without news from the traveller after which the coordinator checks it is still somewhere.
STALL_CHECK: Final = 3.0
#: New travellers started after one was lost with a host, at most.
MAX_RELAUNCHES: Final = 3


@dataclass(frozen=True, slots=True)
class MeshBenchmarkRequest:
    repeats: int = 1
    #: Extra bytes of state the traveller carries.
    payload_size: int = 0
    exclude_self: bool = False
    clock_probes: int = 5
    #: Host names ([]: every online host).
    hosts: list[str] = field(default_factory=list)
    timeout: float = 600.0
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class MeshReadRequest:
    #: Hops already read.
    after: int = 0


@dataclass(frozen=True, slots=True)
class MeshBenchmarkProgress:
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    hosts: list[str] = field(default_factory=list)
    planned_moves: int = 0
    #: Hops after ``after`` (at most :data:`MAX_READ`).
    records: list[MeshTravelRecord] = field(default_factory=list)
    moves_done: int = 0
    #: Where the traveller is, and where it goes next.
    at_host: str = ""
    next_host: str = ""
    #: Host → why pairs with it are missing.
    errors: dict[str, str] = field(default_factory=dict)
    #: Set once the job finished.
    summary: MeshBenchmarkSummary | None = None


@dataclass(frozen=True, slots=True)
class ProbeReply:
    received_at: float = 0.0
    sent_at: float = 0.0


@dataclass(frozen=True, slots=True)
class HopReport:
    at_host: str = ""
    next_host: str = ""
    record: MeshTravelRecord | None = None
    probes: list[ClockProbe] = field(default_factory=list)
    #: Hosts the traveller could not reach (host → error).
    dead: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TravellerDone:
    error: str = ""
    dead: dict[str, str] = field(default_factory=dict)


START_BENCHMARK = ServiceOperation("start", MeshBenchmarkRequest, MeshBenchmarkProgress)
READ_BENCHMARK = ServiceOperation("read", MeshReadRequest, MeshBenchmarkProgress)
CANCEL_BENCHMARK = ServiceOperation("cancel", EmptyPayload, MeshBenchmarkProgress)
CLOCK_PROBE = ServiceOperation("clock_probe", EmptyPayload, ProbeReply)
REPORT_HOP = ServiceOperation("hop", HopReport)
TRAVELLER_DONE = ServiceOperation("traveller_done", TravellerDone)


@dataclass
class MeshBenchmarkCoordinatorState(PagletState):
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    planned_moves: int = 0
    records: list[MeshTravelRecord] = field(default_factory=list)
    probes: list[ClockProbe] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    at_host: str = ""
    next_host: str = ""
    traveller_id: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    summary: MeshBenchmarkSummary | None = None


class MeshBenchmarkCoordinatorAgent(NotificationMixin, OperationPaglet[MeshBenchmarkCoordinatorState]):
    """Plans the route, answers clock probes and collects hops (see the module docstring)."""

    State = MeshBenchmarkCoordinatorState
    Operations = (START_BENCHMARK, READ_BENCHMARK, CANCEL_BENCHMARK, CLOCK_PROBE, REPORT_HOP, TRAVELLER_DONE)

    def operation_handlers(self) -> dict[ServiceOperation[Any, Any], Any]:
        return {
            START_BENCHMARK: self.start,
            READ_BENCHMARK: self.read,
            CANCEL_BENCHMARK: self.cancel,
            CLOCK_PROBE: self.clock_probe,
            REPORT_HOP: self.hop,
            TRAVELLER_DONE: self.traveller_done,
        }

    def clock_probe(self, _request: EmptyPayload) -> ProbeReply:
        received = time.time()
        return ProbeReply(received, time.time())

    def start(self, request: MeshBenchmarkRequest) -> MeshBenchmarkProgress:
        if self.state.status != _jobs.NEW:
            raise ValueError(f"this benchmark was already started ({self.state.status})")
        if not 0 <= request.payload_size <= MAX_PAYLOAD:
            raise ValueError(f"payload size {request.payload_size} is above the limit of {MAX_PAYLOAD} bytes")
        if not 1 <= request.repeats <= 1000 or not 1 <= request.clock_probes <= MAX_PROBES:
            raise ValueError(f"repeats must be 1 to 1000, clock probes 1 to {MAX_PROBES}")
        if not 0 < request.timeout <= 86400:
            raise ValueError("timeout must be between 0 and 86400 seconds")
        online = {ref.name: ref.url for ref in self.context.available_hosts(online_only=True)}
        errors = {name: "not an online host of the mesh" for name in request.hosts if name not in online}
        names = sorted(n for n in online if not request.hosts or n in request.hosts)
        here = self.context.name
        if here in names:  # the route starts and ends on the entry host
            names.remove(here)
            names.insert(0, here)
        route = eulerian_route(names, include_self=not request.exclude_self) * request.repeats
        if not route:
            raise ValueError("nothing to measure: the benchmark needs two hosts, or one with self moves")
        if len(route) > MAX_MOVES:
            raise ValueError(f"{len(route)} moves planned, at most {MAX_MOVES} allowed (fewer repeats)")
        with self.locked_state() as state:
            state.job_id = request.job_id or f"mesh-benchmark-{uuid.uuid4().hex[:12]}"
            state.status = _jobs.RUNNING
            state.request = dataclass_to_wire(request)
            state.hosts = names
            state.planned_moves = len(route)
            state.errors = errors
            state.started_at = time.time()
            state.at_host = names[0]
        edges = [
            {
                "source": a,
                "target": b,
                "target_url": online[b],
                "repeat": i // (len(route) // request.repeats),
            }
            for i, (a, b) in enumerate(route)
        ]
        traveller = MeshBenchmarkTravellerState(
            job_id=self.state.job_id,
            coordinator_id=self.agent_id,
            coordinator_url=self.context.address,
            route=edges,
            payload_size=request.payload_size,
            clock_probes=request.clock_probes,
            urls=online,
        )
        self._deadline = time.monotonic() + request.timeout
        self._last_news = time.monotonic()
        self._urls = dict(online)
        threading.Thread(target=self._launch, args=(traveller,), name="mesh-benchmark", daemon=True).start()
        _jobs.dispose_later(self, request.timeout + _jobs.LINGER_SECONDS)
        return self.read(MeshReadRequest(0))

    def _launch(self, traveller: MeshBenchmarkTravellerState) -> None:
        self._template = traveller
        try:
            proxy = self.context.create_paglet(MeshBenchmarkTraveller, traveller)
            with self.locked_state() as state:
                state.traveller_id = proxy.agent_id
            self._watch()
        except Exception as exc:
            self._finish(_jobs.FAILED, f"the traveller could not start: {exc}")

    def _relaunch(self, lost_on: list[str]) -> bool:
        """A new traveller, from here, for the pairs not measured yet without the hosts that went away;
        False when there is nothing left to measure or it cannot start."""
        with self.locked_state() as state:
            done: dict[tuple[str, str], int] = {}
            for record in state.records:
                if not record.extra:
                    done[(record.source, record.target)] = done.get((record.source, record.target), 0) + 1
            dead = {h: e for h, e in state.errors.items()}
            for host in lost_on:
                dead.setdefault(host, "went away with the traveller on it")
        remaining = []
        for edge in self._template.route:
            pair = (edge["source"], edge["target"])
            if done.get(pair, 0) > 0:
                done[pair] -= 1
            elif pair[0] not in dead and pair[1] not in dead:
                remaining.append(edge)
        if not remaining:
            return False
        traveller = MeshBenchmarkTravellerState(
            job_id=self._template.job_id,
            coordinator_id=self.agent_id,
            coordinator_url=self.context.address,
            route=remaining,
            payload_size=self._template.payload_size,
            clock_probes=self._template.clock_probes,
            urls=dict(self._template.urls),
            dead=dead,
        )
        try:
            proxy = self.context.create_paglet(MeshBenchmarkTraveller, traveller)
        except Exception:
            return False
        self._last_news = time.monotonic()
        with self.locked_state() as state:
            state.traveller_id = proxy.agent_id
            state.at_host, state.next_host = self.context.name, ""
        return True

    def read(self, request: MeshReadRequest) -> MeshBenchmarkProgress:
        after = max(0, request.after)
        with self.locked_state() as state:
            return MeshBenchmarkProgress(
                job_id=state.job_id,
                status=state.status,
                error=state.error,
                hosts=list(state.hosts),
                planned_moves=state.planned_moves,
                records=list(state.records[after : after + MAX_READ]),
                moves_done=len(state.records),
                at_host=state.at_host,
                next_host=state.next_host,
                errors=dict(state.errors),
                summary=state.summary,
            )

    def cancel(self, _request: EmptyPayload) -> MeshBenchmarkProgress:
        self._finish(_jobs.CANCELLED, "cancelled")
        return self.read(MeshReadRequest(0))

    def hop(self, report: HopReport) -> None:
        self._last_news = time.monotonic()
        with self.locked_state() as state:
            if state.status != _jobs.RUNNING:
                return
            if report.record is not None and len(state.records) < MAX_MOVES:
                state.records.append(report.record)
            state.probes.extend(report.probes[:MAX_PROBES])
            for host, error in report.dead.items():
                state.errors.setdefault(host, error)
            state.at_host, state.next_host = report.at_host, report.next_host

    def traveller_done(self, done: TravellerDone) -> None:
        with self.locked_state() as state:
            for host, error in done.dead.items():
                state.errors.setdefault(host, error)
        self._finish(_jobs.FAILED if done.error else _jobs.DONE, done.error)

    def on_activation(self, event: PersistencyEvent) -> None:
        if self.state.status == _jobs.RUNNING:
            self.state.status = _jobs.FAILED
            self.state.error = "the benchmark was interrupted (its host saved it to disk)"
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    def _watch(self) -> None:
        """Until the job ends: the deadline, and a traveller lost with a host that went away (it is on
        neither the host it last reported from nor the one it was moving to, three checks in a row)."""
        misses = relaunches = 0
        while self.state.status == _jobs.RUNNING:
            if time.monotonic() >= self._deadline:
                self._finish(_jobs.FAILED, "timed out before the traveller finished")
                return
            if time.monotonic() - self._last_news > STALL_CHECK:
                with self.locked_state() as state:
                    where = [h for h in (state.at_host, state.next_host) if h]
                misses = 0 if any(self._traveller_on(host) for host in where) else misses + 1
                if misses >= 3:
                    gone = [h for h in where if not self.context.is_host_online(h)] or where
                    with self.locked_state() as state:
                        for host in gone:
                            state.errors.setdefault(host, "went away with the traveller on it")
                    relaunches += 1
                    if relaunches > MAX_RELAUNCHES or not self._relaunch(gone):
                        self._finish(
                            _jobs.DONE if relaunches <= MAX_RELAUNCHES else _jobs.FAILED,
                            "" if relaunches <= MAX_RELAUNCHES else "the traveller was lost too often",
                        )
                        return
                    misses = 0
            time.sleep(0.25)  # the pace of the deadline and liveness checks

    def _traveller_on(self, host: str) -> bool:
        url = self._urls.get(host)
        if not url or not self.state.traveller_id:
            return False
        try:
            proxy: Any = self.context.get_proxy(self.state.traveller_id, url)
            proxy.info()
        except Exception:
            return False
        return True

    def _finish(self, status: str, error: str = "") -> None:
        with self.locked_state() as state:
            if state.status in _jobs.FINISHED:
                return
            state.status = status
            state.error = error
            state.finished_at = time.time()
            request = dataclass_from_wire(MeshBenchmarkRequest, dict(state.request))
            state.summary = summarize(
                state.hosts,
                list(state.records),
                list(state.probes),
                include_self=not request.exclude_self,
                started_at=state.started_at,
                finished_at=state.finished_at,
            )
            job_id, moves, traveller = state.job_id, len(state.records), state.traveller_id
        if status != _jobs.DONE and traveller:
            self._stop_traveller(traveller)
        severity = NotificationSeverity.INFO if status == _jobs.DONE else NotificationSeverity.ERROR
        text = f"{moves} moves measured" + (f"; {error}" if error else "")
        self.notify_user_info(severity, f"mesh-benchmark.{status}", text, job_id=job_id)
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    def _stop_traveller(self, agent_id: str) -> None:
        """Dispose the traveller wherever it is now (best effort; it also stops at its next arrival)."""
        with self.locked_state() as state:
            where = [h for h in (state.at_host, state.next_host) if h]
        for ref in self.context.available_hosts(online_only=True):
            if ref.name in where:
                try:
                    proxy: Any = self.context.get_proxy(agent_id, ref.url)
                    proxy.dispose()
                except Exception:
                    pass


@dataclass
class MeshBenchmarkTravellerState(PagletState):
    job_id: str = ""
    coordinator_id: str = ""
    coordinator_url: str = ""
    #: The planned pairs: ``{"source", "target", "target_url", "repeat"}``.
    route: list[dict[str, Any]] = field(default_factory=list)
    #: Host name → URL.
    urls: dict[str, str] = field(default_factory=dict)
    index: int = 0
    sequence: int = 0
    payload_size: int = 0
    payload: bytes = b""
    clock_probes: int = 5
    #: The move in flight: source host, departure on the entry clock, whether it is an extra move.
    pending_source: str = ""
    pending_departure: float = 0.0
    pending_extra: bool = False
    pending_repeat: int = 0
    dead: dict[str, str] = field(default_factory=dict)
    started: bool = False


class MeshBenchmarkTraveller(Paglet[MeshBenchmarkTravellerState]):
    """Visits every directed pair of hosts and times each move (see the module docstring)."""

    State = MeshBenchmarkTravellerState

    def run(self) -> None:
        arrived = time.time()  # first: the arrival instant of the move that brought it here
        state = self.state
        try:
            if not state.started:
                state.payload = os.urandom(state.payload_size) if state.payload_size else b""
                state.started = True
            offset, probes = self._probe()
            record = None
            if state.pending_source:
                arrival = arrived - offset
                record = MeshTravelRecord(
                    sequence=state.sequence,
                    repeat=state.pending_repeat,
                    source=state.pending_source,
                    target=self.context.name,
                    departed_at=state.pending_departure,
                    arrived_at=arrival,
                    seconds=max(0.0, arrival - state.pending_departure),
                    payload_bytes=len(state.payload),
                    extra=state.pending_extra,
                )
                state.sequence += 1
                state.pending_source = ""
            self._travel(offset, probes, record)
        except Exception as exc:
            self._done(f"the traveller failed on {self.context.name}: {exc}")

    def _coordinator(self) -> Any:
        return self.context.get_proxy(self.state.coordinator_id, self.state.coordinator_url)

    def _probe(self) -> tuple[float, list[ClockProbe]]:
        coordinator = self._coordinator()
        probes = []
        for _ in range(max(1, self.state.clock_probes)):
            sent = time.time()
            reply = CLOCK_PROBE.decode_reply(coordinator.send(CLOCK_PROBE.to_message(), timeout=10.0))
            offset, rtt = offset_and_rtt(sent, time.time(), reply.received_at, reply.sent_at)
            probes.append(ClockProbe(self.context.name, offset, rtt))
        best = min(probes, key=lambda p: p.rtt_seconds)
        return best.offset_seconds, probes

    def _next(self) -> tuple[str, str, bool, int] | None:
        """The next move ``(target, url, extra, repeat)`` from here, skipping pairs with dead hosts."""
        state, here = self.state, self.context.name
        while state.index < len(state.route):
            edge = state.route[state.index]
            if edge["source"] in state.dead or edge["target"] in state.dead:
                state.index += 1
                continue
            if edge["source"] != here:  # a host went away: reach the next pair's start first
                return edge["source"], state.urls[edge["source"]], True, int(edge["repeat"])
            state.index += 1
            return edge["target"], edge["target_url"], False, int(edge["repeat"])
        return None

    def _travel(self, offset: float, probes: list[ClockProbe], record: MeshTravelRecord | None) -> None:
        state, coordinator = self.state, self._coordinator()
        while True:
            move = self._next()
            report = HopReport(
                at_host=self.context.name,
                next_host=move[0] if move else "",
                record=record,
                probes=probes,
                dead=dict(state.dead),
            )
            coordinator.send(REPORT_HOP.to_message(report), timeout=10.0)
            record, probes = None, []
            if move is None:
                self._done("")
                return
            target, url, extra, repeat = move
            state.pending_source = self.context.name
            state.pending_extra = extra
            state.pending_repeat = repeat
            state.pending_departure = time.time() - offset
            try:
                self.dispatch(url)
                return  # the copy on the target goes on from its run()
            except Exception as exc:
                state.pending_source = ""
                state.dead[target] = f"cannot move there: {exc}"

    def _done(self, error: str) -> None:
        try:
            done = TravellerDone(error=error, dead=dict(self.state.dead))
            self._coordinator().send(TRAVELLER_DONE.to_message(done), timeout=10.0)
        except Exception:
            pass
        host: Any = self.context.host
        try:
            host.dispose(self.agent_id)
        except Exception:
            pass

    def handle_message(self, message: Message) -> Any:
        return self.not_handled()
