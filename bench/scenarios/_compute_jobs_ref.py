"""The bench's compute job on paglets 2.0: spins for ``seconds``, then leaves a marker file."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from paglets.system.compute_slots import ComputeJobPaglet, ComputeJobState


@dataclass
class SpinState(ComputeJobState):
    seconds: float = 1.0
    marker_dir: str = ""
    label: str = ""
    started: float = 0.0


class SpinJob(ComputeJobPaglet[SpinState]):
    State = SpinState

    def run_compute_job(self) -> None:
        self.state.started = time.time()
        deadline = time.perf_counter() + self.state.seconds
        value = 0
        while time.perf_counter() < deadline:
            for i in range(10_000):
                value ^= i * 2654435761

    def after_compute_success(self) -> None:
        marker = {
            "label": self.state.label,
            "started": self.state.started,
            "ended": time.time(),
            "host": self.context.name,
        }
        path = os.path.join(self.state.marker_dir, f"{self.state.label}.json")
        with open(path + ".tmp", "w") as fh:
            json.dump(marker, fh)
        os.replace(path + ".tmp", path)
