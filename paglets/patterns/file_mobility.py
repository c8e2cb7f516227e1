"""Moving one file with a paglet: stat it, plan, register it, dispatch, save it atomically on arrival.

A registered file travels with its paglet (``Paglet.register_file``): the runtime checks it, hashes it,
sends it with the paglet and puts a verified copy in the paglet's work directory on the target before
``on_arrival`` runs. :class:`FileMobilityMixin` adds the steps around that, and
:class:`SingleFileTransferPaglet` strings them into a task (``start`` with a
:class:`FileTransferRequest`, result :class:`FileTransferResult`):

1. ``run_task`` on the source host: checks the source (exists, a regular file, readable), resolves the
   target host, records the plan in the state; with ``dry_run`` it completes here with the plan.
2. Otherwise it registers the file (``copy`` keeps the source, ``move`` deletes it once the paglet has
   arrived), marks the task ``WAITING_FOR_ARRIVAL`` and dispatches to the target.
3. ``on_arrival`` on the target copies the arrived file to the destination through a temporary file in
   the same directory (fsync, then rename), refuses to replace an existing file unless ``overwrite``,
   checks the SHA-256 of what it wrote against the registered one, and completes the task. If saving
   fails the hook raises: the move is rolled back, the paglet stays on the source host with the task
   FAILED, and the source file is untouched, also in ``move`` mode.

A destination ending in ``/`` (or naming an existing directory) gets the source's file name; an empty
destination means the source's file name in the target host's working directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Final

from paglets.core.events import MobilityEvent
from paglets.remote.proxy import PagletProxy

from .notifications import NotificationMixin, NotificationSeverity
from .tasks import TaskPaglet, TaskState, TaskStatus

__all__ = [
    "FileMobilityMixin",
    "FileTransferArrival",
    "FileTransferEndpoint",
    "FileTransferMode",
    "FileTransferPlan",
    "FileTransferRequest",
    "FileTransferResult",
    "FileTransferSource",
    "FileTransferState",
    "SingleFileTransferPaglet",
    "format_bytes",
]

#: Bytes copied per read while saving an arrived file.
COPY_CHUNK: Final = 1 << 20


class FileTransferMode(Enum):
    COPY = "copy"
    MOVE = "move"


@dataclass(frozen=True, slots=True)
class FileTransferRequest:
    source_path: str
    destination_path: str = ""
    #: Mesh host name or URL of the destination host.
    target_host: str = ""
    mode: FileTransferMode = FileTransferMode.COPY
    dry_run: bool = False
    overwrite: bool = False
    transfer_id: str = ""
    source_label: str = ""
    destination_label: str = ""


@dataclass(frozen=True, slots=True)
class FileTransferEndpoint:
    host_name: str = ""
    host_url: str = ""
    path: str = ""
    created_at: float = 0.0
    modified_at: float = 0.0


@dataclass(frozen=True, slots=True)
class FileTransferResult:
    transfer_id: str = ""
    mode: FileTransferMode = FileTransferMode.COPY
    dry_run: bool = False
    source: FileTransferEndpoint = field(default_factory=FileTransferEndpoint)
    destination: FileTransferEndpoint = field(default_factory=FileTransferEndpoint)
    file_name: str = ""
    size_bytes: int = 0
    size: str = ""
    #: SHA-256 (lowercase hex) of the saved file, checked against the registered one ("" for a dry run).
    sha256: str = ""
    #: True when the destination existed and was replaced (``overwrite``).
    replaced: bool = False


@dataclass(frozen=True, slots=True)
class FileTransferSource:
    path: Path
    file_name: str
    size_bytes: int
    created_at: float
    modified_at: float


@dataclass(frozen=True, slots=True)
class FileTransferPlan:
    request: FileTransferRequest
    source: FileTransferSource
    destination_path: str
    target_host: str


@dataclass(frozen=True, slots=True)
class FileTransferArrival:
    scratch_path: Path
    destination_path: str
    source_name: str
    overwrite: bool
    mode: FileTransferMode


@dataclass
class FileTransferState(TaskState):
    transfer_id: str = ""
    mode: FileTransferMode = FileTransferMode.COPY
    dry_run: bool = False
    overwrite: bool = False
    source_host_name: str = ""
    source_host_url: str = ""
    destination_host_name: str = ""
    destination_host_url: str = ""
    source_path: str = ""
    destination_path: str = ""
    final_path: str = ""
    file_name: str = ""
    size_bytes: int = 0
    source_created_at: float = 0.0
    source_modified_at: float = 0.0
    sha256: str = ""
    replaced: bool = False


def format_bytes(size_bytes: int) -> str:
    """``512 B``, ``1.5 KB``, ``3.0 MB`` ... (powers of 1024)."""
    amount = float(max(0, int(size_bytes)))
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024:
            return f"{int(amount)} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TB"


def _planned_destination(destination: str, source_name: str) -> str:
    text = (destination or "").strip()
    if not text or text == ".":
        return source_name
    if text.endswith(("/", os.sep)):
        return text + source_name
    return text


def _resolved_destination(destination: str, source_name: str, *, check_existing_dir: bool) -> Path:
    text = (destination or "").strip()
    if not text or text == ".":
        return Path(source_name).resolve(strict=False)
    path = Path(text).expanduser()
    if text.endswith(("/", os.sep)) or (check_existing_dir and path.is_dir()):
        path = path / source_name
    return path.resolve(strict=False)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _me(mixin: object) -> Any:
    """The paglet a mixin is part of."""
    return mixin


class FileMobilityMixin(NotificationMixin):
    """The steps of moving one registered file (see the module docstring).

    The paglet's state must be a :class:`FileTransferState`.
    """

    #: Logical name of the registered file.
    registered_file_name: ClassVar[str] = "file"
    #: Title prefix of the notifications sent to ``user-info``.
    notification_title: ClassVar[str] = "File transfer"

    def require_transfer_target(self, request: FileTransferRequest) -> str:
        """The target host (name or URL); ``ValueError`` when missing or not an online mesh host."""
        target = (request.target_host or "").strip()
        if not target:
            raise ValueError("no target host given")
        context = _me(self).context
        ref = context.host_status(target)
        if ref is None:
            if "://" in target:
                return target
            known = ", ".join(sorted(h.name for h in context.available_hosts(online_only=False)))
            raise ValueError(f"unknown host {target!r} (known: {known or 'none'})")
        if not ref.online:
            raise ValueError(f"host {target!r} is offline")
        return target

    def stat_transfer_source(self, source_path: str | Path) -> FileTransferSource:
        """The source file's facts; a clear error when it is missing, not a file or not readable."""
        source = Path(source_path).expanduser()
        try:
            info = source.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"source file not found: {source}") from None
        except OSError as exc:
            raise OSError(f"cannot read source {source}: {exc.strerror or exc}") from None
        if source.is_dir():
            raise IsADirectoryError(f"source is a directory, not a file: {source}")
        if not source.is_file():
            raise ValueError(f"source is not a regular file: {source}")
        try:
            with source.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise PermissionError(f"source file is not readable: {source} ({exc.strerror or exc})") from None
        return FileTransferSource(
            path=source.resolve(strict=False),
            file_name=source.name,
            size_bytes=int(info.st_size),
            created_at=float(getattr(info, "st_birthtime", info.st_ctime)),
            modified_at=float(info.st_mtime),
        )

    def prepare_file_transfer(self, request: FileTransferRequest) -> FileTransferPlan:
        target = self.require_transfer_target(request)
        source = self.stat_transfer_source(request.source_path)
        destination = self.remember_transfer_request(request, source)
        return FileTransferPlan(
            request=request, source=source, destination_path=destination, target_host=target
        )

    def remember_transfer_request(self, request: FileTransferRequest, source: FileTransferSource) -> str:
        """Record the plan in the state; returns the planned destination path (as text)."""
        target = self.require_transfer_target(request)
        me = _me(self)
        ref = me.context.host_status(target)
        destination = self.plan_destination_path(request.destination_path, source.file_name)
        with me.locked_state() as state:
            state.transfer_id = request.transfer_id or f"file-transfer-{uuid.uuid4().hex}"
            state.mode = request.mode
            state.dry_run = bool(request.dry_run)
            state.overwrite = bool(request.overwrite)
            state.source_host_name = me.context.name
            state.source_host_url = me.context.address
            state.destination_host_name = request.destination_label or (ref.name if ref else target)
            state.destination_host_url = ref.url if ref else target
            state.source_path = str(source.path)
            state.destination_path = request.destination_path
            state.final_path = destination
            state.file_name = source.file_name
            state.size_bytes = source.size_bytes
            state.source_created_at = source.created_at
            state.source_modified_at = source.modified_at
            state.sha256 = ""
            state.replaced = False
        return destination

    def remember_transfer_arrival(self, destination: Path) -> str:
        me = _me(self)
        final_path = str(destination.resolve(strict=False))
        with me.locked_state() as state:
            state.destination_host_name = me.context.name
            state.destination_host_url = me.context.address
            state.final_path = final_path
        return final_path

    def register_transfer_file(self, source: FileTransferSource, mode: FileTransferMode) -> None:
        _me(self).register_file(source.path, name=self.registered_file_name, mode=mode.value)

    def register_planned_file(self, plan: FileTransferPlan) -> None:
        self.register_transfer_file(plan.source, plan.request.mode)

    def mark_waiting_for_arrival(self) -> None:
        _me(self).set_task_status(TaskStatus.WAITING_FOR_ARRIVAL, done=False)

    def build_transfer_result(self, *, destination_path: str, dry_run: bool) -> FileTransferResult:
        with _me(self).locked_state() as state:
            return FileTransferResult(
                transfer_id=state.transfer_id,
                mode=state.mode,
                dry_run=dry_run,
                source=FileTransferEndpoint(
                    host_name=state.source_host_name,
                    host_url=state.source_host_url,
                    path=state.source_path,
                    created_at=state.source_created_at,
                    modified_at=state.source_modified_at,
                ),
                destination=FileTransferEndpoint(
                    host_name=state.destination_host_name,
                    host_url=state.destination_host_url,
                    path=destination_path,
                ),
                file_name=state.file_name,
                size_bytes=state.size_bytes,
                size=format_bytes(state.size_bytes),
                sha256=state.sha256,
                replaced=state.replaced,
            )

    def plan_destination_path(self, destination: str, source_name: str) -> str:
        return _planned_destination(destination, source_name)

    def resolve_destination_path(
        self, destination: str, source_name: str, *, check_existing_dir: bool = True
    ) -> Path:
        return _resolved_destination(destination, source_name, check_existing_dir=check_existing_dir)

    def atomic_copy_file(self, source: Path, destination: Path, *, overwrite: bool) -> Path:
        """Copy ``source`` to ``destination`` through a temporary file beside it (fsync, rename).

        Without ``overwrite`` an existing destination is never replaced, not even by a file that
        appears while copying (``FileExistsError``).
        """
        self._last_copy_sha256 = ""
        if destination.is_dir():
            raise IsADirectoryError(f"destination is a directory: {destination}")
        if destination.exists() and not overwrite:
            raise FileExistsError(f"destination already exists: {destination}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        try:
            with source.open("rb") as reader, temporary.open("xb") as writer:
                while chunk := reader.read(COPY_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            with contextlib.suppress(OSError):
                info = source.stat()
                os.utime(temporary, (info.st_atime, info.st_mtime))
            if overwrite:
                os.replace(temporary, destination)
            else:
                try:
                    os.link(temporary, destination)  # fails if the destination appeared meanwhile
                except FileExistsError:
                    raise FileExistsError(f"destination already exists: {destination}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        _fsync_dir(destination.parent)
        self._last_copy_sha256 = digest.hexdigest()
        return destination.resolve(strict=False)

    def save_registered_file_to_destination(
        self, *, destination: str, source_name: str, overwrite: bool
    ) -> Path:
        scratch = _me(self).file_path(self.registered_file_name)
        target = self.resolve_destination_path(destination, source_name, check_existing_dir=True)
        return self.atomic_copy_file(scratch, target, overwrite=overwrite)

    def current_transfer_arrival(self) -> FileTransferArrival | None:
        """The arrived file to save, or None when this paglet is not waiting for an arrival."""
        me = _me(self)
        with me.locked_state() as state:
            if state.status is not TaskStatus.WAITING_FOR_ARRIVAL:
                return None
            name, destination = state.file_name, state.destination_path
            overwrite, mode = bool(state.overwrite), state.mode
        return FileTransferArrival(
            scratch_path=me.file_path(self.registered_file_name),
            destination_path=destination,
            source_name=name,
            overwrite=overwrite,
            mode=mode,
        )

    def save_arrived_file(self, arrival: FileTransferArrival) -> Path:
        """Save the arrived file; the SHA-256 of what was written must equal the registered one."""
        me = _me(self)
        destination = self.resolve_destination_path(arrival.destination_path, arrival.source_name)
        existed = destination.exists()
        saved = self.atomic_copy_file(arrival.scratch_path, destination, overwrite=arrival.overwrite)
        written = getattr(self, "_last_copy_sha256", "")
        expected = next(
            (ref.sha256 for ref in me.registered_files() if ref.name == self.registered_file_name), ""
        )
        if expected and written and expected != written:
            with contextlib.suppress(OSError):
                saved.unlink()
            raise OSError(f"SHA-256 mismatch after saving {saved}: expected {expected}, wrote {written}")
        with me.locked_state() as state:
            state.sha256 = written or expected
            state.replaced = existed
        return saved

    def notify_transfer_info(self, title: str, message: str) -> bool:
        return self.notify_user_info(
            NotificationSeverity.INFO,
            f"{self.notification_title} {title}",
            message,
            job_id=_me(self).state.transfer_id,
        )

    def notify_transfer_error(self, title: str, message: str) -> bool:
        return self.notify_user_info(
            NotificationSeverity.ERROR,
            f"{self.notification_title} {title}",
            message,
            job_id=_me(self).state.transfer_id,
        )


class SingleFileTransferPaglet(
    FileMobilityMixin,
    TaskPaglet[FileTransferRequest, FileTransferResult, FileTransferState],
):
    """A task paglet that carries one file to another host (see the module docstring)."""

    Request = FileTransferRequest
    Result = FileTransferResult
    State = FileTransferState

    def run_task(self, request: FileTransferRequest) -> FileTransferResult | PagletProxy | None:
        plan = self.prepare_file_transfer(request)
        where = f"{self.state.destination_host_name}:{plan.destination_path}"
        self._notify_info(
            "found file",
            f"Found {plan.source.path} ({format_bytes(plan.source.size_bytes)}); destination {where}",
        )
        if request.dry_run:
            self._notify_info("dry run", f"Would {request.mode.value} {plan.source.path} to {where}")
            return self.build_transfer_result(destination_path=plan.destination_path, dry_run=True)
        self.register_planned_file(plan)
        self.mark_waiting_for_arrival()
        self._notify_info(
            "dispatching", f"Dispatching to {self.state.destination_host_name} with {plan.source.file_name}"
        )
        moved: PagletProxy = self.dispatch(plan.target_host)
        return moved

    def on_arrival(self, event: MobilityEvent) -> None:
        arrival = self.current_transfer_arrival()
        if arrival is None:
            return
        try:
            saved = self.save_arrived_file(arrival)
        except Exception as exc:
            self._notify_error("failed", str(exc))
            raise  # the move is rolled back: the paglet (and a moved file) stay on the source host
        final_path = self.remember_transfer_arrival(saved)
        self.complete_task(self.build_transfer_result(destination_path=final_path, dry_run=False))
        self._notify_info(
            "saved file",
            f"Saved {format_bytes(self.state.size_bytes)} to {self.context.name}:{final_path} "
            f"({arrival.mode.value})",
        )

    def _notify_info(self, title: str, message: str) -> bool:
        return self.notify_transfer_info(title, message)

    def _notify_error(self, title: str, message: str) -> bool:
        return self.notify_transfer_error(title, message)
