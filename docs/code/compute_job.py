"""Compute jobs: count the primes below a bound on a host with a free compute slot."""

from dataclasses import dataclass
from typing import Any

from paglets.compute import (
    CollectingComputeJobPaglet,
    CollectingComputeJobState,
    ComputeJobPaglet,
    ComputeJobState,
)


def count_primes(below: int) -> int:
    """A sieve of Eratosthenes: CPU work."""
    sieve = bytearray([1]) * max(2, below)
    sieve[0] = sieve[1] = 0
    for n in range(2, int(below**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, below, n)))
    return sum(sieve)


# --8<-- [start:job]
@dataclass
class PrimeState(ComputeJobState):
    below: int = 0
    count: int = 0


class PrimeJob(ComputeJobPaglet[PrimeState]):
    State = PrimeState

    def run_compute_job(self) -> None:  # on the granted host, in the job's own process
        self.state.count = count_primes(self.state.below)

    def after_compute_success(self) -> None:  # the slot is released already
        self.notify_user("info", "primes", f"{self.state.count} primes below {self.state.below}")


# --8<-- [end:job]


# --8<-- [start:group]
@dataclass
class PrimeTaskState(CollectingComputeJobState):
    below: int = 0
    count: int = 0


class PrimeTask(CollectingComputeJobPaglet):
    State = PrimeTaskState

    def run_compute_job(self) -> None:
        self.state.count = count_primes(self.state.below)

    def build_result_payload(self) -> dict[str, Any]:  # sent to the collector, then the job disposes
        return {"below": self.state.below, "primes": self.state.count}


# --8<-- [end:group]
