"""Patterns for writing paglets: typed tasks and operations, fan-out by cloning, moving a file, notifying
the user. As in paglets 2.0, this package re-exports the pattern classes (the other topic packages
export nothing); ``docs/patterns.md`` shows each one in use.
"""

from .coordination import ChildRoleState, CursorDrainMixin, MeshFanoutMixin, MeshFanoutState
from .file_mobility import (
    FileMobilityMixin,
    FileTransferArrival,
    FileTransferEndpoint,
    FileTransferMode,
    FileTransferPlan,
    FileTransferRequest,
    FileTransferResult,
    FileTransferSource,
    FileTransferState,
    SingleFileTransferPaglet,
    format_bytes,
)
from .notifications import NotificationMixin, NotificationSeverity
from .operations import OperationClient, OperationPaglet
from .tasks import TaskClient, TaskPaglet, TaskSnapshot, TaskState, TaskStatus

__all__ = [
    "ChildRoleState",
    "CursorDrainMixin",
    "FileMobilityMixin",
    "FileTransferArrival",
    "FileTransferEndpoint",
    "FileTransferMode",
    "FileTransferPlan",
    "FileTransferRequest",
    "FileTransferResult",
    "FileTransferSource",
    "FileTransferState",
    "MeshFanoutMixin",
    "MeshFanoutState",
    "NotificationMixin",
    "NotificationSeverity",
    "OperationClient",
    "OperationPaglet",
    "SingleFileTransferPaglet",
    "TaskClient",
    "TaskPaglet",
    "TaskSnapshot",
    "TaskState",
    "TaskStatus",
    "format_bytes",
]
