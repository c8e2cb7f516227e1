"""Compute jobs: paglets that run CPU-heavy work on hosts with a free compute slot.

``ComputeJobPaglet`` (one job), ``CollectingComputeJobPaglet`` and ``ResultCollectorPaglet`` (a group of
jobs and the paglet that gathers their results), ``submit_compute_job_group``. The scheduler they use is
the ``compute-slots`` resident service (:mod:`paglets.services.builtin.compute_slots`); ``docs/compute.md``
describes both.
"""

from paglets.compute.groups import (
    GROUP_STATUS_ACTIVE,
    GROUP_STATUS_COMPLETE,
    GROUP_STATUS_RETURNING_HOME,
    GROUP_STATUS_WAITING_FOR_HOME,
    CollectingComputeJobPaglet,
    CollectingComputeJobState,
    ComputeJobGroupSubmission,
    ResultCollectorPaglet,
    ResultCollectorState,
    submit_compute_job_group,
)
from paglets.compute.job import (
    COMPUTE_STATUS_COMPLETED,
    COMPUTE_STATUS_FAILED_FINAL,
    COMPUTE_STATUS_NEW,
    COMPUTE_STATUS_PLACING,
    COMPUTE_STATUS_RUNNING,
    COMPUTE_STATUS_WAITING_FOR_SLOT,
    ComputeJobPaglet,
    ComputeJobState,
)

__all__ = [
    "COMPUTE_STATUS_COMPLETED",
    "COMPUTE_STATUS_FAILED_FINAL",
    "COMPUTE_STATUS_NEW",
    "COMPUTE_STATUS_PLACING",
    "COMPUTE_STATUS_RUNNING",
    "COMPUTE_STATUS_WAITING_FOR_SLOT",
    "GROUP_STATUS_ACTIVE",
    "GROUP_STATUS_COMPLETE",
    "GROUP_STATUS_RETURNING_HOME",
    "GROUP_STATUS_WAITING_FOR_HOME",
    "CollectingComputeJobPaglet",
    "CollectingComputeJobState",
    "ComputeJobGroupSubmission",
    "ComputeJobPaglet",
    "ComputeJobState",
    "ResultCollectorPaglet",
    "ResultCollectorState",
    "submit_compute_job_group",
]
