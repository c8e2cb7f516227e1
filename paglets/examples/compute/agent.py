"""The pi paglets: a coordinator on the entry host and workers on the mesh's hosts.

:class:`PiJobPaglet` (an :class:`~paglets.patterns.OperationPaglet`) plans the job when it gets
``start``: the Chudnovsky terms the requested digits need, cut into batches (term ranges). A driver
thread then creates :class:`PiWorker` paglets on the chosen hosts (each host's first worker reports its
CPU count; up to that many work there, at most ``max_workers_per_host``) and feeds them batches, one
``compute`` call at a time per worker, at most ``max_in_flight`` at once. Results are merged in term
order as they come; each time the merged prefix allows enough new reliable digits, they are appended
to the coordinator's state, where the command reads them with ``read`` (an offset) and prints them.

A worker that fails or whose host goes away is dropped and its batch is given to another worker (each
batch at most :data:`MAX_ATTEMPTS` times); the job fails only when no worker is left or the deadline
passes. At the end the workers are disposed, a ``pi.done`` (or ``pi.failed``) notification goes to the
entry host's ``user-info``, and the coordinator disposes itself if the command never collects it.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.agent import PagletState
from paglets.core.events import PersistencyEvent
from paglets.examples import _jobs
from paglets.examples.compute.chudnovsky import (
    binary_split,
    combine,
    from_hex,
    pi_fraction,
    reliable_digits,
    terms_for,
    to_hex,
)
from paglets.patterns import NotificationMixin, NotificationSeverity, OperationClient, OperationPaglet
from paglets.remote.proxy import PagletProxy
from paglets.services.contracts import EmptyPayload, ServiceOperation

__all__ = [
    "CANCEL_PI",
    "COMPUTE_BATCH",
    "MAX_DIGITS",
    "PI_JOB_CLASS",
    "READ_PI",
    "START_PI",
    "WORKER_HELLO",
    "PiBatchReply",
    "PiBatchRequest",
    "PiComputeRequest",
    "PiJobPaglet",
    "PiJobState",
    "PiProgress",
    "PiReadRequest",
    "PiWorker",
    "PiWorkerInfo",
]

PI_JOB_CLASS: Final = "paglets.examples.compute.agent:PiJobPaglet"
#: Largest ``start + digits`` a job may ask for (the final division and the checks grow quadratically).
MAX_DIGITS: Final = 200_000
#: Most terms in one batch (keeps each worker's answer small and the stream of digits smooth).
MAX_BATCH_TERMS: Final = 256
#: Workers of one job at most (each is a paglet process on some host).
MAX_WORKERS: Final = 64
#: Times one batch is handed out before the job gives up.
MAX_ATTEMPTS: Final = 3
#: Digits one ``read`` returns at most.
MAX_READ_DIGITS: Final = 256 * 1024
#: Seconds one ``compute`` call may take at most.
BATCH_TIMEOUT: Final = 120.0


@dataclass(frozen=True, slots=True)
class PiComputeRequest:
    #: Decimals to skip after "3." (0: start right after the point).
    start: int = 0
    digits: int = 16
    #: Terms per batch (0: chosen from the number of workers).
    batch_size: int = 0
    #: Batches computed at once (0: one per worker).
    max_in_flight: int = 0
    #: Workers per host (0: the host's CPU count, at most 8).
    max_workers_per_host: int = 0
    #: Host names to use ([]: every online host).
    hosts: list[str] = field(default_factory=list)
    timeout: float = 300.0
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class PiReadRequest:
    #: Digits already read (the reply carries what follows).
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PiProgress:
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    start: int = 0
    #: Digits asked for.
    digits: int = 0
    #: Position (in the digits of this job) of ``text``.
    offset: int = 0
    #: Digits from ``offset`` on (at most :data:`MAX_READ_DIGITS`).
    text: str = ""
    #: Digits ready so far.
    available: int = 0
    terms: int = 0
    terms_merged: int = 0
    batches: int = 0
    batches_done: int = 0
    #: Host name → workers running there.
    workers: dict[str, int] = field(default_factory=dict)
    #: Host name → batches computed there.
    host_batches: dict[str, int] = field(default_factory=dict)
    #: Host name → why it was dropped (workers and batches retried elsewhere).
    errors: dict[str, str] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    #: Seconds of computing summed over all batches (work done by the workers).
    compute_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PiBatchRequest:
    term_start: int = 0
    term_count: int = 1


@dataclass(frozen=True, slots=True)
class PiBatchReply:
    term_start: int = 0
    term_count: int = 0
    p: str = ""
    q: str = ""
    t: str = ""
    seconds: float = 0.0
    host_name: str = ""


@dataclass(frozen=True, slots=True)
class PiWorkerInfo:
    host_name: str = ""
    cpus: int = 1


START_PI = ServiceOperation("start", PiComputeRequest, PiProgress)
READ_PI = ServiceOperation("read", PiReadRequest, PiProgress)
CANCEL_PI = ServiceOperation("cancel", EmptyPayload, PiProgress)
COMPUTE_BATCH = ServiceOperation("compute", PiBatchRequest, PiBatchReply)
WORKER_HELLO = ServiceOperation("hello", EmptyPayload, PiWorkerInfo)


@dataclass
class PiWorkerState(PagletState):
    batches: int = 0


class PiWorker(OperationPaglet[PiWorkerState]):
    """Computes Chudnovsky term ranges on its host (one at a time: its mailbox is serial)."""

    State = PiWorkerState
    Operations = (COMPUTE_BATCH, WORKER_HELLO)

    def operation_handlers(self) -> dict[ServiceOperation[Any, Any], Any]:
        return {COMPUTE_BATCH: self.compute, WORKER_HELLO: self.hello}

    def hello(self, _request: EmptyPayload) -> PiWorkerInfo:
        return PiWorkerInfo(self.context.name, _jobs.host_cpu_count())

    def compute(self, request: PiBatchRequest) -> PiBatchReply:
        if request.term_start < 0 or not 1 <= request.term_count <= MAX_BATCH_TERMS * 4:
            raise ValueError(f"bad term range {request.term_start}+{request.term_count}")
        began = time.perf_counter()
        p, q, t = binary_split(request.term_start, request.term_start + request.term_count)
        self.state.batches += 1
        return PiBatchReply(
            term_start=request.term_start,
            term_count=request.term_count,
            p=to_hex(p),
            q=to_hex(q),
            t=to_hex(t),
            seconds=time.perf_counter() - began,
            host_name=self.context.name,
        )


@dataclass
class PiJobState(PagletState):
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    #: The digits ready so far (after ``start``).
    digits: str = ""
    terms: int = 0
    terms_merged: int = 0
    batches: int = 0
    batches_done: int = 0
    workers: dict[str, int] = field(default_factory=dict)
    host_batches: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float = 0.0
    compute_seconds: float = 0.0


class PiJobPaglet(NotificationMixin, OperationPaglet[PiJobState]):
    """The coordinator of one pi job (see the module docstring)."""

    State = PiJobState
    Operations = (START_PI, READ_PI, CANCEL_PI)

    def operation_handlers(self) -> dict[ServiceOperation[Any, Any], Any]:
        return {START_PI: self.start, READ_PI: self.read, CANCEL_PI: self.cancel}

    # --- operations (main thread; never wait) -----------------------------------------------------------

    def start(self, request: PiComputeRequest) -> PiProgress:
        if self.state.status != _jobs.NEW:
            raise ValueError(f"this job was already started ({self.state.status})")
        if request.start < 0 or request.digits < 1 or request.start + request.digits > MAX_DIGITS:
            raise ValueError(
                f"start must be 0 or more, digits 1 or more, start + digits at most {MAX_DIGITS}"
            )
        if not 0 < request.timeout <= 86400:
            raise ValueError("timeout must be between 0 and 86400 seconds")
        terms = terms_for(request.start + request.digits)
        with self.locked_state() as state:
            state.job_id = request.job_id or f"pi-{uuid.uuid4().hex[:12]}"
            state.status = _jobs.RUNNING
            state.request = {"start": request.start, "digits": request.digits}
            state.terms = terms
            state.started_at = time.time()
        self._cancelled = threading.Event()
        self._deadline = time.monotonic() + request.timeout
        driver = threading.Thread(target=self._drive, args=(request, terms), name="pi-driver", daemon=True)
        driver.start()
        _jobs.dispose_later(self, request.timeout + _jobs.LINGER_SECONDS)
        return self._progress(0)

    def read(self, request: PiReadRequest) -> PiProgress:
        return self._progress(max(0, request.offset))

    def cancel(self, _request: EmptyPayload) -> PiProgress:
        cancelled = getattr(self, "_cancelled", None)
        if cancelled is not None:
            cancelled.set()
        self._finish(_jobs.CANCELLED, "cancelled")
        return self._progress(0)

    def on_activation(self, event: PersistencyEvent) -> None:
        # The threads did not survive the deactivation: a job that was running cannot go on.
        if self.state.status == _jobs.RUNNING:
            self.state.status = _jobs.FAILED
            self.state.error = "the job was interrupted (its host saved it to disk)"
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    def _progress(self, offset: int) -> PiProgress:
        with self.locked_state() as state:
            end = state.finished_at or time.time()
            return PiProgress(
                job_id=state.job_id,
                status=state.status,
                error=state.error,
                start=int(state.request.get("start", 0)),
                digits=int(state.request.get("digits", 0)),
                offset=offset,
                text=state.digits[offset : offset + MAX_READ_DIGITS],
                available=len(state.digits),
                terms=state.terms,
                terms_merged=state.terms_merged,
                batches=state.batches,
                batches_done=state.batches_done,
                workers=dict(state.workers),
                host_batches=dict(state.host_batches),
                errors=dict(state.errors),
                elapsed_seconds=max(0.0, end - state.started_at) if state.started_at else 0.0,
                compute_seconds=state.compute_seconds,
            )

    def _finish(self, status: str, error: str = "") -> bool:
        with self.locked_state() as state:
            if state.status in _jobs.FINISHED:
                return False
            state.status = status
            state.error = error
            state.finished_at = time.time()
            job_id, digits = state.job_id, len(state.digits)
        if status == _jobs.DONE:
            self.notify_user_info(
                NotificationSeverity.INFO, "pi.done", f"{digits} digits of pi", job_id=job_id
            )
        else:
            self.notify_user_info(NotificationSeverity.ERROR, f"pi.{status}", error, job_id=job_id)
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)
        return True

    # --- the driver thread ---------------------------------------------------------------------------------

    def _drive(self, request: PiComputeRequest, terms: int) -> None:
        workers: list[PagletProxy] = []
        try:
            self._run_job(request, terms, workers)
        except Exception as exc:
            self._finish(_jobs.FAILED, str(exc) or type(exc).__name__)
        finally:
            for proxy in workers:
                try:
                    proxy.dispose()
                except Exception:
                    pass

    def _left(self) -> float:
        return self._deadline - time.monotonic()

    def _hosts(self, request: PiComputeRequest) -> list[tuple[str, str]]:
        online = {ref.name: ref.url for ref in self.context.available_hosts(online_only=True)}
        if not request.hosts:
            return sorted(online.items())
        chosen = []
        for name in request.hosts:
            if name in online:
                chosen.append((name, online[name]))
            else:
                self._host_error(name, "not an online host of the mesh")
        return chosen

    def _host_error(self, host: str, error: str) -> None:
        with self.locked_state() as state:
            state.errors.setdefault(host, error)

    def _run_job(self, request: PiComputeRequest, terms: int, workers: list[PagletProxy]) -> None:
        hosts = self._hosts(request)
        if not hosts:
            raise RuntimeError("no online host to compute on")
        self._workers_lock = threading.Lock()
        per_host_cap = request.max_workers_per_host or 8
        # A slot is one worker: (host name, host URL, its proxy or None while not created yet).
        slots: list[tuple[str, str, PagletProxy | None]] = []
        for name, url, proxy, cpus in self._create_workers(hosts, workers):
            slots.append((name, url, proxy))
            slots.extend((name, url, None) for _ in range(min(per_host_cap, cpus) - 1))
        if not slots:
            raise RuntimeError("no worker could be started on any host")
        # Spread the slots over the hosts before cutting them to the limit: first workers first.
        slots.sort(key=lambda slot: slot[2] is None)
        slots = slots[: min(len(slots), request.max_in_flight or len(slots), MAX_WORKERS)]
        batch = request.batch_size or max(1, -(-terms // (len(slots) * 4)))
        batch = max(1, min(batch, MAX_BATCH_TERMS))
        batches: queue.SimpleQueue[tuple[int, int, int]] = queue.SimpleQueue()
        count = 0
        for first in range(0, terms, batch):
            batches.put((first, min(batch, terms - first), 0))
            count += 1
        with self.locked_state() as state:
            state.batches = count
        self._merge = _Merger(self, terms)
        threads = [
            threading.Thread(target=self._slot, args=(*slot, batches, workers), daemon=True) for slot in slots
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, self._left()) + BATCH_TIMEOUT)
        if self.state.status in _jobs.FINISHED:
            return
        if self._merge.done():
            self._finish(_jobs.DONE)
        elif self._left() <= 0:
            self._finish(_jobs.FAILED, f"timed out after {request.timeout:g} s")
        else:
            self._finish(_jobs.FAILED, "no worker left to compute on (see the host errors)")

    def _create_workers(
        self, hosts: list[tuple[str, str]], workers: list[PagletProxy]
    ) -> list[tuple[str, str, PagletProxy, int]]:
        """One worker per host (in parallel); each says how many CPUs its host has."""
        found: list[tuple[str, str, PagletProxy, int]] = []

        def one(name: str, url: str) -> None:
            try:
                proxy = self._new_worker(name, url, workers)
                info = OperationClient(proxy).call(WORKER_HELLO, timeout=max(1.0, min(30.0, self._left())))
            except Exception as exc:
                self._host_error(name, f"cannot start a worker: {exc}")
                return
            with self._workers_lock:
                found.append((name, url, proxy, max(1, info.cpus)))

        threads = [threading.Thread(target=one, args=host, daemon=True) for host in hosts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(1.0, min(60.0, self._left())))
        with self._workers_lock:
            return sorted(found, key=lambda item: item[0])

    def _new_worker(self, host: str, url: str, workers: list[PagletProxy]) -> PagletProxy:
        proxy: PagletProxy = self.context.create_paglet(PiWorker, host_url=url)
        with self._workers_lock:
            workers.append(proxy)
        with self.locked_state() as state:
            state.workers[host] = state.workers.get(host, 0) + 1
        return proxy

    def _slot(
        self,
        host: str,
        url: str,
        proxy: PagletProxy | None,
        batches: queue.SimpleQueue[tuple[int, int, int]],
        workers: list[PagletProxy],
    ) -> None:
        while not self._cancelled.is_set() and self._left() > 0 and self.state.status == _jobs.RUNNING:
            try:
                first, count, attempts = batches.get_nowait()
            except queue.Empty:
                return
            try:
                if proxy is None:
                    proxy = self._new_worker(host, url, workers)
                timeout = max(1.0, min(BATCH_TIMEOUT, self._left()))
                reply = OperationClient(proxy).call(
                    COMPUTE_BATCH, PiBatchRequest(first, count), timeout=timeout
                )
                parts = (from_hex(reply.p), from_hex(reply.q), from_hex(reply.t))
            except Exception as exc:
                if attempts + 1 >= MAX_ATTEMPTS:
                    last = first + count - 1
                    self._finish(_jobs.FAILED, f"terms {first}-{last} failed {MAX_ATTEMPTS} times: {exc}")
                    return
                batches.put((first, count, attempts + 1))  # another worker takes it
                self._host_error(host, f"a worker failed: {exc}")
                if proxy is not None:
                    with self.locked_state() as state:
                        state.workers[host] = max(0, state.workers.get(host, 0) - 1)
                return  # this worker is dropped
            with self.locked_state() as state:
                state.batches_done += 1
                state.host_batches[host] = state.host_batches.get(host, 0) + 1
                state.compute_seconds += reply.seconds
            self._merge.add(first, count, parts)


class _Merger:
    """Merges term ranges in order and turns the merged prefix into digits (in the slot threads)."""

    def __init__(self, job: PiJobPaglet, terms: int) -> None:
        self._job = job
        self._terms = terms
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[int, tuple[int, int, int]]] = {}
        self._prefix: tuple[int, int, int] | None = None
        self._merged = 0
        self._emitted_terms = 0
        request = job.state.request
        self._start = int(request.get("start", 0))
        self._digits = int(request.get("digits", 0))

    def done(self) -> bool:
        with self._lock:
            return self._merged >= self._terms

    def add(self, first: int, count: int, parts: tuple[int, int, int]) -> None:
        with self._lock:
            self._pending[first] = (count, parts)
            while self._merged in self._pending:
                size, piece = self._pending.pop(self._merged)
                self._prefix = piece if self._prefix is None else combine(self._prefix, piece)
                self._merged += size
            merged, prefix = self._merged, self._prefix
            with self._job.locked_state() as state:
                state.terms_merged = merged
            # New digits when the prefix grew by half of what was turned into digits (or at the end):
            # every conversion costs a full division, so they are spaced geometrically.
            finished = merged >= self._terms
            grown = merged - self._emitted_terms >= max(1, self._emitted_terms // 2)
            if prefix is None or not (finished or grown):
                return
            ready = min(self._digits, reliable_digits(merged) - self._start)
            if ready <= 0:
                return
            have = len(self._job.state.digits)
            if ready <= have:
                return
            text = pi_fraction(*prefix, self._start + ready)[self._start + have :]
            self._emitted_terms = merged
        with self._job.locked_state() as state:
            if len(state.digits) == have:
                state.digits += text
