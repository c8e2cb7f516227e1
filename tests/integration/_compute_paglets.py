"""Compute jobs for the compute-slots tests (imported by name in paglet processes)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from paglets.compute import (
    CollectingComputeJobPaglet,
    CollectingComputeJobState,
    ComputeJobPaglet,
    ComputeJobState,
)


@dataclass
class SpinState(ComputeJobState):
    seconds: float = 0.5
    result: float = 0.0
    ran_on: str = ""


class SpinJob(ComputeJobPaglet[SpinState]):
    """Busy-loops for ``seconds`` (CPU-bound), then stays COMPLETED."""

    State = SpinState

    def run_compute_job(self) -> None:
        deadline = time.monotonic() + self.state.seconds
        value = 0
        while time.monotonic() < deadline:
            for i in range(10_000):
                value ^= i * 2654435761
        with self.locked_state() as state:
            state.result = float(value & 0xFFFF)
            state.ran_on = self.context.name


@dataclass
class GroupSpinState(CollectingComputeJobState):
    seconds: float = 0.5


class GroupSpinJob(CollectingComputeJobPaglet):
    State = GroupSpinState  # type: ignore[assignment]

    def run_compute_job(self) -> None:
        deadline = time.monotonic() + float(getattr(self.state, "seconds", 0.5))
        while time.monotonic() < deadline:
            sum(range(10_000))

    def build_result_payload(self) -> dict[str, object]:
        return {"host": self.context.name}


@dataclass
class DiskFullState(ComputeJobState):
    pass


class DiskFullJob(ComputeJobPaglet[DiskFullState]):
    """Writes its output to a device that is always full (Linux ``/dev/full``)."""

    State = DiskFullState

    def run_compute_job(self) -> None:
        with open("/dev/full", "wb") as out:
            out.write(b"x" * 65536)
            out.flush()


@dataclass
class PinState(ComputeJobState):
    seconds: float = 0.3
    #: The CPUs the job's work ran on (``sched_getaffinity`` of its worker thread).
    affinity: list[int] = field(default_factory=list)


class PinProbeJob(ComputeJobPaglet[PinState]):
    """Spins briefly and records the CPUs it was allowed to run on."""

    State = PinState

    def run_compute_job(self) -> None:
        deadline = time.monotonic() + self.state.seconds
        while time.monotonic() < deadline:
            sum(range(10_000))
        with self.locked_state() as state:
            state.affinity = sorted(os.sched_getaffinity(0))


@dataclass
class ArtifactGroupState(GroupSpinState):
    #: Bytes of the result file reported as an artifact (0: a small result only).
    artifact_bytes: int = 0


def artifact_content(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


class ArtifactGroupJob(GroupSpinJob):
    """A group job whose large result goes to its collector's host as an artifact."""

    State = ArtifactGroupState  # type: ignore[assignment]

    def after_compute_success(self) -> None:
        size = int(getattr(self.state, "artifact_bytes", 0))
        if size and not self.state.report_sent:
            path = Path(self.work_dir()) / "result.bin"
            path.write_bytes(artifact_content(size))
            self.report_compute_artifact(
                path, result={"host": self.context.name}, move=True, name="result.bin"
            )
        super().after_compute_success()
