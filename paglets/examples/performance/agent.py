"""The performance benchmark paglet: a parent on the entry host clones itself to every host.

``start`` (a :class:`BenchmarkRequest`) makes the paglet the parent of a fan-out
(:class:`~paglets.patterns.MeshFanoutMixin`): it clones itself to every online host of the mesh (or the
requested ones). Each clone runs the kernels of :mod:`paglets.examples.performance.kernels` on its host,
one benchmark per machine at a time, sends its :class:`HostBenchmarkResult` to the parent and disposes
itself. The parent collects the results; the command reads them with ``read``.

A host that goes away is noticed within about a second (its clone no longer answers, or the mesh marks
the host offline) and reported in ``errors``; the other results still come in. At the deadline every
host still missing is reported too. At the end a ``perf.done`` notification goes to the entry host's
``user-info``.
"""

from __future__ import annotations

import platform
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.events import PersistencyEvent
from paglets.examples import _jobs
from paglets.examples.performance import kernels
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
    "CANCEL_BENCHMARK",
    "CHILD_RESULT",
    "PERF_CLASS",
    "READ_BENCHMARK",
    "START_BENCHMARK",
    "BenchmarkProgress",
    "BenchmarkRequest",
    "HostBenchmarkResult",
    "PerformanceBenchmarkAgent",
    "PerformanceState",
]

PERF_CLASS: Final = "paglets.examples.performance.agent:PerformanceBenchmarkAgent"
#: Seconds between two checks that the hosts still pending are alive.
WATCH_INTERVAL: Final = 0.5
#: Largest temporary file per disk target.
MAX_DISK_SIZE: Final = 4 << 30


@dataclass(frozen=True, slots=True)
class BenchmarkRequest:
    #: Seconds per kernel.
    duration: float = 1.0
    #: Bytes of the temporary file per disk target.
    disk_size: int = 128 << 20
    #: Processes of the multi-core kernels (0: the host's CPUs).
    workers: int = 0
    #: Directories to test the disk in ([]: the host's temporary directory).
    paths: list[str] = field(default_factory=list)
    cpu: bool = True
    memory: bool = True
    disk: bool = True
    #: Seconds to wait for another benchmark on the same machine.
    lock_timeout: float = 60.0
    #: Host names ([]: every online host).
    hosts: list[str] = field(default_factory=list)
    timeout: float = 120.0
    job_id: str = ""


@dataclass(frozen=True, slots=True)
class HostBenchmarkResult:
    host: str = ""
    host_url: str = ""
    platform: str = ""
    python_version: str = ""
    cpus: int = 0
    workers: int = 0
    lock_wait_seconds: float = 0.0
    seconds: float = 0.0
    single_core: list[kernels.KernelResult] = field(default_factory=list)
    multi_core: list[kernels.KernelResult] = field(default_factory=list)
    memory: list[kernels.KernelResult] = field(default_factory=list)
    disks: list[kernels.DiskResult] = field(default_factory=list)
    #: Disk target → why it was not tested.
    skipped: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BenchmarkProgress:
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    hosts: list[str] = field(default_factory=list)
    pending_hosts: list[str] = field(default_factory=list)
    results: dict[str, HostBenchmarkResult] = field(default_factory=dict)
    #: Host → why it has no result.
    errors: dict[str, str] = field(default_factory=dict)
    cleanup_errors: dict[str, str] = field(default_factory=dict)
    elapsed_seconds: float = 0.0


START_BENCHMARK = ServiceOperation("start", BenchmarkRequest, BenchmarkProgress)
READ_BENCHMARK = ServiceOperation("read", EmptyPayload, BenchmarkProgress)
CANCEL_BENCHMARK = ServiceOperation("cancel", EmptyPayload, BenchmarkProgress)
CHILD_RESULT = ServiceOperation("child_result", HostBenchmarkResult)


@dataclass
class PerformanceState(MeshFanoutState):
    job_id: str = ""
    status: str = _jobs.NEW
    error: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: True once every clone was sent (the fan-out may finish only then).
    fanned_out: bool = False
    started_at: float = 0.0
    finished_at: float = 0.0


class PerformanceBenchmarkAgent(MeshFanoutMixin, NotificationMixin, OperationPaglet[PerformanceState]):
    """Parent and clones of the performance benchmark (see the module docstring)."""

    State = PerformanceState
    Operations = (START_BENCHMARK, READ_BENCHMARK, CANCEL_BENCHMARK, CHILD_RESULT)

    def operation_handlers(self) -> dict[ServiceOperation[Any, Any], Any]:
        return {
            START_BENCHMARK: self.start,
            READ_BENCHMARK: self.read,
            CANCEL_BENCHMARK: self.cancel,
            CHILD_RESULT: self.child_result,
        }

    # --- the parent ----------------------------------------------------------------------------------

    def start(self, request: BenchmarkRequest) -> BenchmarkProgress:
        if self.state.status != _jobs.NEW:
            raise ValueError(f"this benchmark was already started ({self.state.status})")
        if not 0.01 <= request.duration <= 60:
            raise ValueError("duration must be between 0.01 and 60 seconds")
        if not 0 < request.disk_size <= MAX_DISK_SIZE:
            raise ValueError(f"disk size must be between 1 byte and {MAX_DISK_SIZE} bytes")
        if not 0 < request.timeout <= 86400:
            raise ValueError("timeout must be between 0 and 86400 seconds")
        self.fanout_reset(timeout=request.timeout)
        with self.locked_state() as state:
            state.job_id = request.job_id or f"perf-{uuid.uuid4().hex[:12]}"
            state.status = _jobs.RUNNING
            state.request = dataclass_to_wire(request)
            state.started_at = time.time()
        threading.Thread(target=self._fan_out, args=(request,), name="perf-fanout", daemon=True).start()
        _jobs.dispose_later(self, request.timeout + _jobs.LINGER_SECONDS)
        return self.read(EmptyPayload())

    def read(self, _request: EmptyPayload) -> BenchmarkProgress:
        with self.locked_state() as state:
            end = state.finished_at or time.time()
            return BenchmarkProgress(
                job_id=state.job_id,
                status=state.status,
                error=state.error,
                hosts=list(state.hosts),
                pending_hosts=list(state.pending_hosts),
                results={h: dataclass_from_wire(HostBenchmarkResult, r) for h, r in state.results.items()},
                errors=dict(state.errors),
                cleanup_errors=dict(state.cleanup_errors),
                elapsed_seconds=max(0.0, end - state.started_at) if state.started_at else 0.0,
            )

    def cancel(self, _request: EmptyPayload) -> BenchmarkProgress:
        self._finish(_jobs.CANCELLED, "cancelled")
        return self.read(EmptyPayload())

    def child_result(self, result: HostBenchmarkResult) -> None:
        if self.state.role != "parent" or self.state.status != _jobs.RUNNING:
            return
        with self.locked_state() as state:
            if result.host not in state.pending_hosts:
                return  # late (already reported missing) or unknown
            state.results[result.host] = dataclass_to_wire(result)
        self.fanout_record_done(result.host)
        self._maybe_done()

    def on_activation(self, event: PersistencyEvent) -> None:
        if self.state.role == "parent" and self.state.status == _jobs.RUNNING:
            self.state.status = _jobs.FAILED
            self.state.error = "the benchmark was interrupted (its host saved it to disk)"
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    def _fan_out(self, request: BenchmarkRequest) -> None:
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
            self._maybe_done()
            self._watch()
        except Exception as exc:
            self._finish(_jobs.FAILED, str(exc) or type(exc).__name__)

    def _watch(self) -> None:
        _jobs.watch_children(self, finished=self._maybe_done, interval=WATCH_INTERVAL)

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
            job_id, done, failed = state.job_id, len(state.results), len(state.errors)
        self.fanout_cleanup_children()
        message = f"{done} host(s) measured, {failed} missing" + (f": {error}" if error else "")
        severity = NotificationSeverity.INFO if status == _jobs.DONE else NotificationSeverity.ERROR
        self.notify_user_info(severity, f"perf.{status}", message, job_id=job_id)
        _jobs.dispose_later(self, _jobs.LINGER_SECONDS)

    # --- a clone -------------------------------------------------------------------------------------

    def run(self) -> None:
        if self.state.role != "child":
            return
        request = dataclass_from_wire(BenchmarkRequest, dict(self.state.request))
        result = measure(request, self.context.name, self.context.address)
        parent: Any = self.context.get_proxy(self.state.parent_agent_id, self.state.parent_host_url)
        try:
            parent.send_oneway(CHILD_RESULT.to_message(result), timeout=30.0)
        except Exception:
            pass  # the parent is gone or unreachable: it reports this host as missing
        host: Any = self.context.host
        try:
            host.dispose(self.agent_id)
        except Exception:
            pass


def measure(request: BenchmarkRequest, host: str, url: str) -> HostBenchmarkResult:
    """Run the requested kernels on this machine (holding the machine's benchmark lock)."""
    began = time.perf_counter()
    cpus = _jobs.host_cpu_count()
    workers = request.workers or cpus
    errors: list[str] = []
    single: list[kernels.KernelResult] = []
    multi: list[kernels.KernelResult] = []
    memory: list[kernels.KernelResult] = []
    disks: list[kernels.DiskResult] = []
    skipped: dict[str, str] = {}
    waited = 0.0
    try:
        with kernels.benchmark_lock(request.lock_timeout) as waited:
            if request.cpu:
                single = _guard(errors, "cpu", lambda: kernels.single_core(request.duration))
                multi = _guard(errors, "multi-core", lambda: kernels.multi_core(request.duration, workers))
            if request.memory:
                memory = _guard(errors, "memory", lambda: kernels.memory_kernels(request.duration))
            if request.disk:
                targets, skipped = kernels.disk_targets(list(request.paths), request.disk_size)
                for path in targets:
                    found = _guard(
                        errors, f"disk {path}", lambda p=path: [kernels.disk_benchmark(p, request.disk_size)]
                    )
                    disks.extend(found)
    except TimeoutError as exc:
        errors.append(str(exc))
    return HostBenchmarkResult(
        host=host,
        host_url=url,
        platform=platform.platform(),
        python_version=platform.python_version(),
        cpus=cpus,
        workers=workers,
        lock_wait_seconds=waited,
        seconds=time.perf_counter() - began,
        single_core=single,
        multi_core=multi,
        memory=memory,
        disks=disks,
        skipped=skipped,
        errors=errors,
    )


def _guard(errors: list[str], what: str, run: Any) -> list[Any]:
    try:
        found: list[Any] = run()
        return found
    except Exception as exc:
        errors.append(f"{what}: {exc}")
        return []
