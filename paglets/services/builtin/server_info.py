"""``server-info``: what one host has and does, as a typed resident service.

Operations of the ``server-info`` contract (version 1):

- ``load`` (:class:`LoadRequest` → :class:`LoadReply`): CPU percent, load average, memory and swap, and
  GPUs through ``nvidia-smi`` (with a timeout; when it is missing or fails, ``gpu_error`` says why).
- ``df`` (:class:`DiskRequest` → :class:`DiskReply`): usage of the given paths, or of every mounted
  volume; a path that does not exist, cannot be read or hangs is reported in ``errors``.
- ``ps`` (:class:`ProcessListRequest` → :class:`ProcessListReply`): processes whose name or command line
  contains the query (case-insensitive), largest resident memory first, at most ``limit`` of them;
  ``matched`` counts them all and ``truncated`` says some were left out.
- ``summary`` (``EmptyPayload`` → :class:`SummaryReply`): platform, Python, boot time, CPU counts, memory.

Every reply names its host and carries ``errors`` (probe → message): a failing probe is reported there
and never fails the call. Every operation is bounded in time and in size (limits in
:mod:`paglets.services.builtin._probes`). The service is mesh-scoped, lazy, and stops after 30 idle
seconds; its agent id is ``service.server-info``. psutil is imported by the paglet process on its first
call, never by the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import EmptyPayload, ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec

__all__ = [
    "GET_DISK",
    "GET_LOAD",
    "GET_SUMMARY",
    "LIST_PROCESSES",
    "SERVER_INFO",
    "SERVER_INFO_AGENT_ID",
    "DiskReply",
    "DiskRequest",
    "DiskUsageInfo",
    "GpuInfo",
    "LoadReply",
    "LoadRequest",
    "ProcessInfo",
    "ProcessListReply",
    "ProcessListRequest",
    "ServerInfoAgent",
    "ServerInfoState",
    "SummaryReply",
]

#: The agent id the bundled launch config gives the service on every host.
SERVER_INFO_AGENT_ID = "service.server-info"


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    utilization_percent: float | None = None
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None


@dataclass(frozen=True, slots=True)
class LoadRequest:
    #: Seconds to sample CPU use over (0: since the previous sample of this service).
    interval: float = 0.0
    include_gpu: bool = True


@dataclass(frozen=True, slots=True)
class LoadReply:
    host_name: str
    host_url: str
    cpu_percent: float = 0.0
    load_average: list[float] = field(default_factory=list)
    memory_total_bytes: int = 0
    memory_used_bytes: int = 0
    memory_available_bytes: int = 0
    memory_percent: float = 0.0
    swap_total_bytes: int = 0
    swap_used_bytes: int = 0
    swap_percent: float = 0.0
    gpu_available: bool = False
    gpu_error: str | None = None
    gpus: list[GpuInfo] = field(default_factory=list)
    cpu_count_logical: int = 0
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DiskRequest:
    #: Paths to report (empty: every mounted volume, or only ``/`` when ``all_volumes`` is false).
    paths: list[str] = field(default_factory=list)
    all_volumes: bool = True


@dataclass(frozen=True, slots=True)
class DiskUsageInfo:
    path: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    percent_used: float
    device: str = ""
    fstype: str = ""


@dataclass(frozen=True, slots=True)
class DiskReply:
    host_name: str
    host_url: str
    volumes: list[DiskUsageInfo] = field(default_factory=list)
    #: Path (or probe) → why it could not be reported.
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProcessListRequest:
    #: Case-insensitive text to find in the process name or command line ("": every process).
    query: str = ""
    limit: int = 25
    include_args: bool = False


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    name: str
    status: str
    username: str
    cpu_percent: float
    memory_rss_bytes: int
    memory_percent: float
    cmdline: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProcessListReply:
    host_name: str
    host_url: str
    query: str
    processes: list[ProcessInfo] = field(default_factory=list)
    truncated: bool = False
    #: How many processes matched (``processes`` holds the ``limit`` largest).
    matched: int = 0
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SummaryReply:
    host_name: str
    host_url: str
    platform: str = ""
    python_version: str = ""
    boot_time: float = 0.0
    cpu_count_logical: int = 0
    cpu_count_physical: int | None = None
    memory_total_bytes: int = 0
    service_agent_id: str = ""
    hostname: str = ""
    paglets_version: str = ""
    errors: dict[str, str] = field(default_factory=dict)


GET_LOAD = ServiceOperation("load", LoadRequest, LoadReply)
GET_DISK = ServiceOperation("df", DiskRequest, DiskReply)
LIST_PROCESSES = ServiceOperation("ps", ProcessListRequest, ProcessListReply)
GET_SUMMARY = ServiceOperation("summary", EmptyPayload, SummaryReply)

SERVER_INFO = ServiceContract("server-info", operations=(GET_LOAD, GET_DISK, LIST_PROCESSES, GET_SUMMARY))


@dataclass
class ServerInfoState(PagletState):
    service_scope: ServiceScope = ServiceScope.MESH


class ServerInfoAgent(Paglet[ServerInfoState]):
    """The ``server-info`` resident service (see the module docstring)."""

    State = ServerInfoState
    RESIDENT_SERVICES = (
        ResidentServiceSpec(
            contract=SERVER_INFO,
            scope=ServiceScope.MESH,
            lifecycle=ResidentLifecycle.LAZY,
            idle_timeout=30.0,
            agent_id=SERVER_INFO_AGENT_ID,
            singleton=True,
            state={"service_scope": ServiceScope.MESH.value},
        ),
    )

    def handle_message(self, message: Message) -> Any:
        return SERVER_INFO.route(
            message,
            {
                GET_LOAD: self.get_load,
                GET_DISK: self.get_disk,
                LIST_PROCESSES: self.list_processes,
                GET_SUMMARY: self.get_summary,
            },
            default=self.not_handled(),
        )

    def _where(self) -> tuple[str, str]:
        return self.context.name, self.context.address

    def get_load(self, request: LoadRequest) -> LoadReply:
        from paglets.services.builtin import _probes

        return _probes.load(request, *self._where())

    def get_disk(self, request: DiskRequest) -> DiskReply:
        from paglets.services.builtin import _probes

        return _probes.disk(request, *self._where())

    def list_processes(self, request: ProcessListRequest) -> ProcessListReply:
        from paglets.services.builtin import _probes

        return _probes.processes(request, *self._where())

    def get_summary(self, request: EmptyPayload) -> SummaryReply:
        from paglets.services.builtin import _probes

        return _probes.summary(*self._where(), service_agent_id=self.agent_id or "")
