"""Compute jobs for the compute-slots tests (imported by name in paglet processes)."""

from __future__ import annotations

import time
from dataclasses import dataclass

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
