"""Keeping the user's ``launch.toml`` in step with the template bundled in ``paglets.config``.

Rules, decided from the ``[launch]`` tables of the two files:

- no file → write the template (``copied``);
- the file says ``sync_demo_config = false`` → leave it (``skipped``);
- same ``demo_config_id`` and ``demo_config_version`` as the template → ``unchanged``;
- otherwise, with ``assume_yes`` or an interactive "yes", keep the old file as ``<name>.old`` (or
  ``<name>.old-YYYYmmdd-HHMMSS`` when that exists, then ``-2``, ``-3``... within the same second) and
  write the template (``updated``); when the answer is no or nobody can be asked → ``update-available``
  and the file is left alone.

Only the ``[launch]`` table of the user's file is checked here: a mistake in an entry is reported when
the host loads the file, with its full key path. An unreadable or malformed ``[launch]`` raises
``HostError`` naming the file.

Writes are atomic: the new content goes to a temporary file in the same directory, is fsynced and
renamed over the target, then the directory is fsynced. The backup is a hard link to the old file (a
copy on file systems without links), made *before* the target is replaced and never over an existing
name, so the target always holds a complete file and no backup is ever overwritten.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from paglets.config._launch_file import (
    BUNDLED_LAUNCH_CONFIG,
    MAX_NAME,
    bundled_launch_config_text,
    decode_text,
    read_file,
    read_launch_table,
)
from paglets.core.errors import HostError
from paglets.core.runtime_values import LaunchConfigSyncAction

__all__ = [
    "MAX_BACKUP_CANDIDATES",
    "LaunchConfigSyncResult",
    "console_prompt",
    "sync_launch_config",
    "sync_launch_config_result",
]

#: Backup names tried per update (``.old``, ``.old-<stamp>``, ``.old-<stamp>-2``, ...) before giving up.
MAX_BACKUP_CANDIDATES: Final = 100


@dataclass(frozen=True, slots=True)
class LaunchConfigSyncResult:
    """What :func:`sync_launch_config_result` did (``backup_path`` is set when the old file was kept)."""

    action: LaunchConfigSyncAction
    path: Path
    backup_path: Path | None = None
    installed_id: str | None = None
    installed_version: str | None = None
    bundled_id: str | None = None
    bundled_version: str | None = None

    def describe(self) -> str:
        """One line for the host's stderr."""
        path, bundled = self.path, f"version {self.bundled_version}"
        action = self.action
        if action is LaunchConfigSyncAction.COPIED:
            return f"copied the bundled launch config ({bundled}) to {path}"
        if action is LaunchConfigSyncAction.SKIPPED:
            return f"launch config {path} has sync_demo_config = false; not synced"
        if action is LaunchConfigSyncAction.UNCHANGED:
            return f"launch config {path} is up to date ({bundled})"
        if action is LaunchConfigSyncAction.UPDATED:
            return (
                f"updated launch config {path} to the bundled {bundled}; "
                f"previous launch config moved to {self.backup_path}"
            )
        return (
            f"warning: launch config {path} (version {self.installed_version}) differs from the bundled "
            f"{bundled}; run with --yes to replace it (the old file is kept as a backup)"
        )


def console_prompt(question: str) -> bool:
    """Ask on stderr and read one line from stdin: "y" or "yes" means yes; anything else, or EOF, no."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline(MAX_NAME)
    return answer.strip().lower() in {"y", "yes"}


def sync_launch_config(
    target: str | os.PathLike[str],
    *,
    bundled: str | None = None,
    assume_yes: bool,
    interactive: bool,
    prompt: Callable[[str], bool] | None = None,
    now: Callable[[], datetime] = datetime.now,
) -> LaunchConfigSyncAction:
    """Bring ``target`` in step with the bundled template; returns what was done (module docstring).

    ``bundled`` is the template text (None: the one shipped with paglets). ``prompt`` asks the user when
    ``interactive`` and not ``assume_yes`` (None: :func:`console_prompt`, which waits for a line on
    stdin). ``now`` gives the local time used to name a second backup.
    """
    return sync_launch_config_result(
        target, bundled=bundled, assume_yes=assume_yes, interactive=interactive, prompt=prompt, now=now
    ).action


def sync_launch_config_result(
    target: str | os.PathLike[str],
    *,
    bundled: str | None = None,
    assume_yes: bool,
    interactive: bool,
    prompt: Callable[[str], bool] | None = None,
    now: Callable[[], datetime] = datetime.now,
) -> LaunchConfigSyncResult:
    """:func:`sync_launch_config` with the details (paths, versions) the host reports."""
    path = Path(target)
    template = bundled_launch_config_text() if bundled is None else bundled
    bundled_source = f"{BUNDLED_LAUNCH_CONFIG} (bundled)"
    bundled_id, bundled_version, _ = read_launch_table(template, bundled_source)
    if bundled_id is None or bundled_version is None:
        raise HostError(f"{bundled_source}: launch: must set demo_config_id and demo_config_version")
    old = read_file(path)
    if old is None:
        _write_atomic(path, template.encode("utf-8"), mode=None)
        return LaunchConfigSyncResult(
            LaunchConfigSyncAction.COPIED, path, bundled_id=bundled_id, bundled_version=bundled_version
        )
    installed_id, installed_version, sync = read_launch_table(decode_text(old, str(path)), str(path))

    def outcome(action: LaunchConfigSyncAction, backup: Path | None = None) -> LaunchConfigSyncResult:
        return LaunchConfigSyncResult(
            action, path, backup, installed_id, installed_version, bundled_id, bundled_version
        )

    if not sync:
        return outcome(LaunchConfigSyncAction.SKIPPED)
    if (installed_id, installed_version) == (bundled_id, bundled_version):
        return outcome(LaunchConfigSyncAction.UNCHANGED)
    if not assume_yes:
        if not interactive:
            return outcome(LaunchConfigSyncAction.UPDATE_AVAILABLE)
        ask = console_prompt if prompt is None else prompt
        question = (
            f"The launch config {path} (id {installed_id}, version {installed_version}) differs from the "
            f"bundled one (id {bundled_id}, version {bundled_version}). Replace it and keep the old file "
            "as a backup?"
        )
        if not ask(question):
            return outcome(LaunchConfigSyncAction.UPDATE_AVAILABLE)
    mode = _mode_of(path)
    backup = _backup(path, old, now(), mode)
    _write_atomic(path, template.encode("utf-8"), mode=mode)
    return outcome(LaunchConfigSyncAction.UPDATED, backup)


def _mode_of(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def backup_names(path: Path, moment: datetime) -> list[Path]:
    """The backup names tried for ``path``, in order."""
    stamp = moment.strftime("%Y%m%d-%H%M%S")
    names = [f"{path.name}.old", f"{path.name}.old-{stamp}"]
    names += [f"{path.name}.old-{stamp}-{n}" for n in range(2, MAX_BACKUP_CANDIDATES)]
    return [path.with_name(name) for name in names]


def _backup(path: Path, content: bytes, moment: datetime, mode: int | None) -> Path:
    """Keep the current ``path`` under the first free backup name (never overwrites one)."""
    for candidate in backup_names(path, moment):
        try:
            os.link(path, candidate)  # atomic and exclusive: fails if the name is taken
        except FileExistsError:
            continue
        except OSError:  # no hard links on this file system: write a copy instead
            if candidate.exists():
                continue
            _write_atomic(candidate, content, mode=mode)
        else:
            _sync_directory(path.parent)
        return candidate
    raise HostError(f"{path}: no free backup name (tried {MAX_BACKUP_CANDIDATES} names)")


def _write_atomic(path: Path, content: bytes, *, mode: int | None) -> None:
    """Replace ``path`` with ``content``: temp file, fsync, rename, directory fsync."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp, flags, 0o644)
        try:
            try:
                if mode is not None:
                    os.chmod(temp, mode)  # an update keeps the permissions the user gave the file
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _sync_directory(directory)
    except OSError as exc:
        raise HostError(f"{path}: cannot write launch config: {exc.strerror or exc}") from exc


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (skipped where directories cannot be opened)."""
    if sys.platform != "win32":  # no directory fsync on Windows (NTFS logs the rename)
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
