"""``FileGrabberPaglet``: :class:`~paglets.patterns.SingleFileTransferPaglet` with the notifications sent
to the ``user-info`` service of the host the command was run against (``home_url``).

The command creates it on the host that has the file, starts it with a
:class:`~paglets.patterns.FileTransferRequest`, and follows it to the destination host, where it saves
the file on arrival. The names of paglets 2.0's example (``FileGrabMode``, ``FileGrabRequest``,
``FileGrabResult``) are kept as aliases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from paglets.patterns.file_mobility import (
    FileTransferMode,
    FileTransferRequest,
    FileTransferResult,
    FileTransferState,
    SingleFileTransferPaglet,
)

__all__ = [
    "FILE_GRABBER_CLASS",
    "FileGrabMode",
    "FileGrabRequest",
    "FileGrabResult",
    "FileGrabberPaglet",
    "FileGrabberState",
]

FileGrabMode = FileTransferMode
FileGrabRequest = FileTransferRequest
FileGrabResult = FileTransferResult

#: How hosts name the class (``POST /agents``).
FILE_GRABBER_CLASS: Final = "paglets.examples.file_grabber.agent:FileGrabberPaglet"


@dataclass
class FileGrabberState(FileTransferState):
    #: URL of the host whose ``user-info`` gets the notifications ("" = this host's).
    home_url: str = ""


class FileGrabberPaglet(SingleFileTransferPaglet):
    """Carries one file to another host and saves it there (see the module docstring)."""

    State = FileGrabberState
    registered_file_name = "grabbed-file"
    notification_title = "File grabber"

    def user_info_host_url(self) -> str:
        return str(getattr(self.state, "home_url", ""))
