"""``paglets-host --auto-update-from-git``: the update at start and the re-exec (docs/auto-update.md).

At start, before the host exists, :func:`startup_update` brings the checkout the host runs from (its
working directory) to the upstream branch's newest commit, with the same steps and statuses as an
update requested later (``paglets.runtime._gitupdate``). When the checkout moved, the command line
re-executes itself (:func:`reexec`); when it cannot update (a dirty tree, no upstream, ...), the host
starts anyway on the commit it has and says why in one line.

The re-exec runs ``python -m paglets.cli.host`` with the same arguments, the same interpreter and the same
working directory, so a console script that is locked while in use (Windows) is never replaced under
itself. The status that caused it travels to the new process in :data:`RESTART_ENV`, so that ``/health``
keeps saying what happened; the new process does not fetch again at its start.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

from paglets.runtime import _gitupdate as gitupdate
from paglets.runtime._gitupdate import GitUpdateStatus

__all__ = ["RESTART_ENV", "StartupUpdate", "reexec", "startup_update"]

#: The environment variable that hands the status of the update behind a re-exec to the new process.
RESTART_ENV: Final = "PAGLETS_AUTO_UPDATE_RESTARTED"
#: The module the re-exec runs (``python -m``).
HOST_MODULE: Final = "paglets.cli.host"


@dataclass(frozen=True, slots=True)
class StartupUpdate:
    repo_root: Path | None
    #: The commit this process runs (``""`` outside a checkout).
    process_start_head: str
    status: GitUpdateStatus
    #: Re-execute before the host starts: the checkout moved.
    restart: bool
    #: This process is the re-exec of an update (the status is the one that caused it).
    restarted: bool = False


def startup_update(cwd: Path) -> StartupUpdate:
    """Update the checkout around ``cwd`` at a host's start (see the module docstring)."""
    carried = os.environ.pop(RESTART_ENV, None)
    status = gitupdate.decode_status(carried) if carried else None
    if status is not None:
        root = gitupdate.find_checkout(cwd)
        head = ""
        if root is not None:
            with contextlib.suppress(Exception):
                head = gitupdate.current_head(root)
        return StartupUpdate(root, head, gitupdate.after_restart(status), restart=False, restarted=True)
    status = gitupdate.update_checkout(cwd)
    root = Path(status.repo_root) if status.repo_root else None
    head = status.process_start_head
    if root is not None and not head:
        with contextlib.suppress(Exception):
            head = gitupdate.current_head(root)
    return StartupUpdate(root, head, status, restart=status.restart_required)


def reexec_argv(argv: Sequence[str]) -> list[str]:
    """The command line of the re-exec: this interpreter, ``-m paglets.cli.host``, the same arguments."""
    return [sys.executable, "-m", HOST_MODULE, *argv]


def reexec(argv: Sequence[str], status: object) -> NoReturn:
    """Replace this process with a fresh host on the checkout's commit (never returns); ``status`` (a
    ``GitUpdateStatus``) travels to the new process."""
    if isinstance(status, GitUpdateStatus):
        os.environ[RESTART_ENV] = gitupdate.encode_status(status)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    command = reexec_argv(argv)
    os.execv(command[0], command)
