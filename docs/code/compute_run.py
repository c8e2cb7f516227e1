"""PrimeJob and a group of PrimeTasks on two hosts that offer one compute slot each."""

import tempfile
import time

from paglets.compute import submit_compute_job_group
from paglets.core.errors import PagletError
from paglets.core.messages import Message
from paglets.runtime.host import Host

from compute_job import PrimeJob, PrimeState, PrimeTask, PrimeTaskState


def status_of(hosts: list[Host], agent_id: str) -> PrimeState | None:
    """The job's state on whichever host it is (None while it moves to where it runs)."""
    for host in hosts:
        try:
            return host.get_state(agent_id, PrimeState)
        except PagletError:
            continue
    return None


options = {"launch_config": "compute_launch.toml", "compute_capacity": {"cpu_slots": 1}}
with tempfile.TemporaryDirectory() as tmp, Host("alpha", persistence_dir=f"{tmp}/alpha", **options) as alpha:
    with Host("beta", persistence_dir=f"{tmp}/beta", peers=[alpha.address], **options) as beta:
        alpha.wait_for_host("beta")
        # --8<-- [start:submit]
        job = alpha.create(
            PrimeJob,
            PrimeState(below=200_000, cpu_cores=1, memory_bytes=64 << 20, estimated_runtime_seconds=1),
        )
        # --8<-- [end:submit]
        deadline, completed = time.monotonic() + 60, "COMPLETED"
        while (
            state := status_of([alpha, beta], job.agent_id)
        ) is None or state.compute_status != "COMPLETED":
            assert time.monotonic() < deadline, "the job did not complete in 60 s"
            assert state is None or state.compute_status != "FAILED_FINAL", state
            time.sleep(0.1)
        ran_on_beta = beta.get_proxy(job.agent_id) is not None
        print(f"{state.count} primes below {state.below}; it ran on beta: {ran_on_beta}")

        # --8<-- [start:submit-group]
        sizes = [10_000, 100_000, 1_000_000]
        states = [PrimeTaskState(below=n, memory_bytes=64 << 20, estimated_runtime_seconds=1) for n in sizes]
        submission = submit_compute_job_group(alpha, PrimeTask, states)
        # --8<-- [end:submit-group]
        while (summary := submission.collector.send(Message("summary")))["status"] != "COMPLETE":
            assert time.monotonic() < deadline, summary
            time.sleep(0.1)
        for result in sorted(summary["results"].values(), key=lambda r: r["result"]["below"]):
            print(f"below {result['result']['below']:>9,}: {result['result']['primes']:>6} primes")
        done, failed = summary["completed_count"], summary["failed_count"]
        print(f"group {summary['status']}: {done} done, {failed} failed")
