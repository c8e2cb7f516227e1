"""Git auto-update of one checkout: fetch, fast-forward, sync dependencies, under a lock.

See docs/auto-update.md.

:func:`update_checkout` is one attempt, run in a thread or before a host starts (it blocks on ``git``
and ``pip``/``uv`` subprocesses, each with a timeout, never through a shell, with no terminal prompts):

1. find the checkout (``git rev-parse --show-toplevel``) and take the checkout's lock (:class:`CheckoutLock`,
   a file in the git directory shared by every worktree, so several hosts on one checkout update it once);
2. refuse a detached HEAD, a branch without upstream, and tracked files with changes (untracked files are
   ignored: a fast-forward never touches them, and ``__pycache__`` directories must not block updates);
3. ``git fetch`` the upstream's remote; the target is the requested commit (it must be on the upstream
   branch after the fetch: ``target-missing`` otherwise) or the upstream branch's newest commit;
4. fast-forward only (``git merge --ff-only``): a branch with local commits the target lacks is a
   ``conflict``, never merged; a checkout already past the target stays where it is;
5. when the checkout now holds another commit than the one this process started on, and a dependency
   file changed between the two (``requirements.txt``, or ``uv.lock``/``pyproject.toml`` of a uv
   project), sync the running environment (``python -m pip install -r requirements.txt``, or
   ``uv sync --locked --inexact`` into it). A failed sync moves the checkout back to where this attempt
   found it, so the files on disk stay those of the code that keeps running (``sync-failed``). A sync
   done for a commit and an environment is remembered in the git directory (``paglets-auto-update.json``),
   so hosts sharing a checkout and an environment sync once.

The answer is a :class:`~paglets.wire.replies.GitUpdateStatus` with one of the statuses of
:data:`ADVICE` and what to do about it; ``restart_required`` says that the process must restart (re-exec)
to run the checkout's commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from paglets._oscompat import lock_exclusive
from paglets.wire.replies import GitUpdateStatus

__all__ = [
    "ADVICE",
    "LOCK_NAME",
    "CheckoutLock",
    "GitResult",
    "GitUpdateStatus",
    "LockBusyError",
    "current_head",
    "find_checkout",
    "git_dir",
    "is_ancestor",
    "update_checkout",
]

#: Seconds ``git fetch`` may take (it talks to the remote).
FETCH_TIMEOUT: Final = 120.0
#: Seconds any local git command may take (rev-parse, status, merge, reset).
GIT_TIMEOUT: Final = 30.0
#: Seconds a dependency sync (pip or uv) may take.
SYNC_TIMEOUT: Final = 600.0
#: Seconds an attempt waits for the checkout's lock held by another process.
LOCK_WAIT: Final = 120.0
#: Age after which a lock counts as abandoned even if its owner seems alive (longer than any attempt:
#: fetch, merge and sync together stay well below it).
LOCK_STALE_AFTER: Final = 1800.0
#: Longest pause between two looks at a busy lock.
LOCK_POLL_MAX: Final = 0.25
#: Bytes of a command's output kept in a status (the end of it, where the error is).
MAX_OUTPUT: Final = 2000

LOCK_NAME: Final = "paglets-auto-update.lock"
GUARD_NAME: Final = "paglets-auto-update.guard"
STATE_NAME: Final = "paglets-auto-update.json"

#: Every status, with the advice a status carries.
ADVICE: Final[Mapping[str, str]] = {
    "updated": "restarting on the new commit",
    "unchanged": "",
    "dirty": "commit, stash or discard the changes to tracked files of this checkout, then retry",
    "conflict": "this branch has commits the target lacks: rebase or reset it by hand "
    "(git pull --rebase, or git reset --hard @{u}), then retry",
    "target-missing": "push the commit, then retry",
    "sync-failed": "the host keeps running its old code: fix the dependency file, push, then retry",
    "disabled": "start the host from a git checkout with --auto-update-from-git",
    "not-a-checkout": "start the host from a git clone (its working directory must be inside one)",
    "detached": "check out the branch to follow (git switch main), then restart the host",
    "no-upstream": "give the branch an upstream (git branch --set-upstream-to origin/main), then retry",
    "fetch-failed": "check the remote and the network (git fetch by hand shows why), then retry",
    "busy": "another process holds the checkout's update lock; retry when it is done",
    "failed": "run the git command by hand to see why",
}

_HASH: Final = re.compile(r"^[0-9a-fA-F]{4,64}\Z")
_FULL_HASH: Final = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?\Z")


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self, fallback: str) -> str:
        text = (self.stderr.strip() or self.stdout.strip() or fallback).strip()
        return text[-MAX_OUTPUT:]


class LockBusyError(Exception):
    """The checkout's lock stayed held by a live owner for the whole wait."""


class _Failed(Exception):
    """An attempt ends with ``status`` (raised inside :func:`update_checkout`)."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.outcome = status
        self.error = error


# --- subprocesses ------------------------------------------------------------------------------------


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of git, pip and uv: no prompts, no redirection of git's directories, stable text."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    env["GIT_TERMINAL_PROMPT"] = "0"  # no username/password prompt: fail instead
    env["GCM_INTERACTIVE"] = "never"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env["LC_ALL"] = "C"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.pop("PAGLETS_AUTO_UPDATE_RESTARTED", None)
    if extra:
        env.update(extra)
    return env


#: Variables that would make git work on another repository than the checkout's (a host started from a
#: git hook inherits them).
_GIT_REDIRECTS: Final = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR", "GIT_PREFIX"}
)


def _run(argv: Sequence[str], cwd: Path, timeout: float, env: Mapping[str, str] | None = None) -> GitResult:
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=_env(env),
            check=False,
        )
    except FileNotFoundError:
        return GitResult(127, stderr=f"{argv[0]}: command not found")
    except OSError as exc:
        return GitResult(126, stderr=f"{argv[0]}: {exc}")
    except subprocess.TimeoutExpired:
        return GitResult(124, stderr=f"{' '.join(argv[:3])} timed out after {timeout:g} s")
    return GitResult(done.returncode, done.stdout, done.stderr)


def git(args: Sequence[str], cwd: Path, *, timeout: float = GIT_TIMEOUT) -> GitResult:
    return _run(["git", *args], cwd, timeout)


def _out(args: Sequence[str], cwd: Path, what: str) -> str:
    result = git(args, cwd)
    if not result.ok or not result.stdout.strip():
        raise _Failed("failed", f"{what}: {result.why('no output')}")
    return result.stdout.strip()


# --- the checkout ------------------------------------------------------------------------------------


def find_checkout(start: Path | str) -> Path | None:
    """The root of the git checkout that contains ``start``, or ``None``."""
    result = git(["rev-parse", "--show-toplevel"], Path(start))
    if not result.ok or not result.stdout.strip():
        return None
    return Path(result.stdout.strip()).resolve()


def git_dir(root: Path) -> Path:
    """The git directory shared by every worktree of ``root`` (where the lock lives)."""
    path = Path(_out(["rev-parse", "--git-common-dir"], root, "git rev-parse --git-common-dir"))
    return (path if path.is_absolute() else root / path).resolve()


def current_head(root: Path) -> str:
    return _out(["rev-parse", "HEAD"], root, "git rev-parse HEAD")


def is_ancestor(root: Path, older: str, newer: str) -> bool:
    """Whether ``older`` is ``newer`` or one of its ancestors (``False`` when either is unknown here)."""
    return git(["merge-base", "--is-ancestor", older, newer], root).ok


# --- the lock ----------------------------------------------------------------------------------------


def _process_start(pid: int) -> str:
    """When process ``pid`` started (psutil's creation time, on every OS), ``""`` when unknown: tells a
    live owner from a new process that got its pid."""
    import psutil  # lazily: only the update lock needs it

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError):
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class CheckoutLock:
    """An update lock of one checkout: the file ``paglets-auto-update.lock`` in its git directory, created
    exclusively, holding its owner (pid, machine, process start, creation time, a random token).

    A lock is stale, and is removed by the next process that wants it, when its owner ran on this
    machine and is gone (no such pid, or the pid belongs to a process started later), when it is older
    than ``stale_after`` seconds whoever holds it, or when its content cannot be read (its writer died
    while writing it). Creating, breaking and releasing the lock happen under an ``flock`` of a guard
    file beside it (released by the kernel if its holder dies), so two processes never both break one
    stale lock and then take turns with a fresh one.
    """

    def __init__(
        self, directory: Path, *, wait: float = LOCK_WAIT, stale_after: float = LOCK_STALE_AFTER
    ) -> None:
        self.path = directory / LOCK_NAME
        self.guard = directory / GUARD_NAME
        self.wait = max(0.0, wait)
        self.stale_after = stale_after
        self._token: str | None = None
        #: Set when this acquisition removed a stale lock (what it held, for the log).
        self.broke: dict[str, object] | None = None

    def __enter__(self) -> CheckoutLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def owner(self) -> dict[str, object] | None:
        """The owner recorded in the lock file (``{}`` when unreadable, ``None`` when there is none)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return {}
        try:
            owner = json.loads(raw)
        except ValueError:
            return {}
        return owner if isinstance(owner, dict) else {}

    def stale(self, owner: Mapping[str, object]) -> bool:
        created = owner.get("created")
        if not isinstance(created, int | float) or time.time() - created > self.stale_after:
            return True
        pid = owner.get("pid")
        if owner.get("machine") != socket.gethostname():
            return False  # another machine (a shared file system): only the age tells
        if not isinstance(pid, int) or not _alive(pid):
            return True
        started = owner.get("started")
        return bool(started) and started != _process_start(pid)

    @contextlib.contextmanager
    def _guarded(self, deadline: float) -> Iterator[None]:
        fd = os.open(self.guard, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            pause = 0.005
            while not lock_exclusive(fd):  # flock on POSIX, msvcrt.locking on Windows
                if time.monotonic() >= deadline:
                    raise LockBusyError(f"{self.guard} stayed locked") from None
                time.sleep(pause)
                pause = min(pause * 2, LOCK_POLL_MAX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        pause = 0.01
        while True:
            with self._guarded(deadline + 1.0):
                if self._try_create():
                    return
                owner = self.owner()
                if owner is not None and self.stale(owner):
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                    self.broke = dict(owner)
                    if self._try_create():
                        return
            if time.monotonic() >= deadline:
                raise LockBusyError(self.describe())
            time.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MAX)

    def _try_create(self) -> bool:
        token = secrets.token_hex(16)
        owner = {
            "pid": os.getpid(),
            "machine": socket.gethostname(),
            "started": _process_start(os.getpid()),
            "created": time.time(),
            "token": token,
        }
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps(owner).encode())
        except BaseException:
            os.close(fd)
            self.path.unlink()
            raise
        os.close(fd)
        self._token = token
        return True

    def release(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        with self._guarded(time.monotonic() + self.wait):
            owner = self.owner()
            if owner and owner.get("token") == token:  # not broken as stale and retaken meanwhile
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    def describe(self) -> str:
        owner = self.owner()
        if not owner:
            return f"the update lock {self.path} is held"
        age = time.time() - float(owner.get("created", 0.0) or 0.0)  # type: ignore[arg-type]
        return (
            f"the update lock {self.path} is held by pid {owner.get('pid')} on {owner.get('machine')} "
            f"(for {age:.0f} s)"
        )


# --- dependency sync ---------------------------------------------------------------------------------


def _find_uv() -> str | None:
    beside = Path(sys.executable).parent / ("uv.exe" if os.name == "nt" else "uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def sync_command(root: Path, changed: Sequence[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """How to sync the running environment with the checkout after ``changed`` files changed: ``(kind,
    argv, env)``, or ``None`` when no dependency file changed."""
    names = set(changed)
    if (root / "uv.lock").exists() and names & {"uv.lock", "pyproject.toml"}:
        uv = _find_uv()
        if uv is None:
            raise _Failed("sync-failed", "uv.lock changed, but the uv command was not found")
        env = {"UV_PROJECT_ENVIRONMENT": sys.prefix} if sys.prefix != sys.base_prefix else {}
        return "uv", [uv, "sync", "--locked", "--inexact"], env
    if "requirements.txt" in names and (root / "requirements.txt").exists():
        argv = [sys.executable, "-m", "pip", "install", "--no-input", "-r", "requirements.txt"]
        return "pip", argv, {}
    return None


def _synced_state(directory: Path) -> dict[str, str]:
    try:
        data = json.loads((directory / STATE_NAME).read_text())
    except (OSError, ValueError):
        return {}
    synced = data.get("synced") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in synced.items()} if isinstance(synced, dict) else {}


def _remember_sync(directory: Path, head: str) -> None:
    synced = _synced_state(directory)
    synced[sys.prefix] = head
    tmp = directory / f"{STATE_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"synced": synced}))
    tmp.replace(directory / STATE_NAME)


# --- one attempt -------------------------------------------------------------------------------------


def update_checkout(
    start: Path | str,
    *,
    process_start_head: str | None = None,
    target: str = "",
    lock_wait: float = LOCK_WAIT,
    sync: bool = True,
) -> GitUpdateStatus:
    """One update attempt of the checkout containing ``start`` (see the module docstring).

    ``process_start_head`` is the commit the running process started on (``None``: the checkout's HEAD
    now, as at a host's start); ``target`` a commit to move to (empty: the upstream's newest).
    """
    began = time.monotonic()
    info: dict[str, object] = {"target_hash": target}
    try:
        root = find_checkout(start)
        if root is None:
            raise _Failed("not-a-checkout", f"{Path(start).resolve()} is not inside a git checkout")
        info["repo_root"] = str(root)
        directory = git_dir(root)
        try:
            with CheckoutLock(directory, wait=lock_wait):
                _attempt(root, directory, process_start_head, target, sync, info)
        except LockBusyError as exc:
            raise _Failed("busy", str(exc)) from None
    except _Failed as failed:
        info["status"] = failed.outcome
        info["error"] = failed.error
    except OSError as exc:
        info["status"] = "failed"
        info["error"] = str(exc)
    status = str(info.pop("status", "failed"))
    return GitUpdateStatus(
        ok=status in ("updated", "unchanged"),
        status=status,
        advice=ADVICE.get(status, ""),
        finished_at=time.time(),
        duration=round(time.monotonic() - began, 3),
        **info,  # type: ignore[arg-type]
    )


def _attempt(
    root: Path,
    directory: Path,
    process_start_head: str | None,
    target: str,
    sync: bool,
    info: dict[str, object],
) -> None:
    before = current_head(root)
    start_head = process_start_head or before
    info.update(before_head=before, after_head=before, process_start_head=start_head)
    branch = git(["symbolic-ref", "--quiet", "--short", "HEAD"], root)
    if not branch.ok:
        raise _Failed("detached", f"HEAD is detached at {before[:12]} (not on a branch)")
    info["branch"] = branch.stdout.strip()
    upstream = git(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"], root)
    if not upstream.ok:
        raise _Failed("no-upstream", f"branch {info['branch']} has no upstream branch")
    info["upstream"] = upstream.stdout.strip()
    remote = git(["config", f"branch.{info['branch']}.remote"], root).stdout.strip() or "origin"

    dirty = git(["status", "--porcelain", "--untracked-files=no"], root)
    if not dirty.ok:
        raise _Failed("failed", f"git status: {dirty.why('failed')}")
    if dirty.stdout.strip():
        paths = [line[3:] for line in dirty.stdout.splitlines() if line.strip()]
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise _Failed("dirty", f"the checkout has changes to tracked files: {shown}")

    fetched = git(["fetch", "--quiet", remote], root, timeout=FETCH_TIMEOUT)
    if not fetched.ok:
        raise _Failed("fetch-failed", f"git fetch {remote}: {fetched.why('failed')}")

    if target:
        if not _HASH.match(target):
            raise _Failed("target-missing", f"{target!r} is not a commit hash")
        found = git(["rev-parse", "--verify", "--quiet", f"{target}^{{commit}}"], root)
        if not found.ok:
            raise _Failed("target-missing", f"commit {target} is not in {remote} (not pushed yet?)")
        wanted = found.stdout.strip()
        if not is_ancestor(root, wanted, "@{upstream}"):
            raise _Failed(
                "target-missing", f"commit {target} is not on {info['upstream']} (pushed to another branch?)"
            )
    else:
        wanted = _out(["rev-parse", "@{upstream}"], root, "git rev-parse @{upstream}")
    info["target_hash"] = wanted

    moved = False
    if wanted != before and not is_ancestor(root, wanted, before):  # else: here already, or ahead of it
        if not is_ancestor(root, before, wanted):
            raise _Failed(
                "conflict",
                f"branch {info['branch']} has commits that {wanted[:12]} lacks (the branches diverged)",
            )
        merged = git(["merge", "--ff-only", "--quiet", wanted], root)
        if not merged.ok:
            raise _Failed("conflict", f"git merge --ff-only {wanted[:12]}: {merged.why('failed')}")
        moved = True
    after = current_head(root)
    info.update(after_head=after, changed=moved)
    if after == start_head:
        info["status"] = "unchanged"
        return
    info["restart_required"] = True
    if sync:
        try:
            info["synced"] = _sync(root, directory, start_head, after)
        except _Failed:
            if moved:  # the files on disk go back to those of the code that keeps running
                git(["reset", "--quiet", "--keep", before], root)
                info["after_head"] = current_head(root)
            info["restart_required"] = False
            raise
    info["status"] = "updated"


def _sync(root: Path, directory: Path, start_head: str, head: str) -> str:
    """Sync the environment for ``head`` if a dependency file changed since ``start_head``; which sync
    ran (``""``: none was needed or it was done already)."""
    diff = git(["diff", "--name-only", start_head, head], root)
    if not diff.ok:
        raise _Failed("failed", f"git diff: {diff.why('failed')}")
    plan = sync_command(root, diff.stdout.split())
    if plan is None or _synced_state(directory).get(sys.prefix) == head:
        return ""
    kind, argv, env = plan
    done = _run(argv, root, SYNC_TIMEOUT, env)
    if not done.ok:
        raise _Failed("sync-failed", f"{kind}: {done.why('failed')}")
    _remember_sync(directory, head)
    return kind


def encode_status(status: GitUpdateStatus) -> str:
    return msgspec.json.encode(status).decode()


def decode_status(text: str) -> GitUpdateStatus | None:
    """A status encoded by :func:`encode_status` (``None`` when it is not one)."""
    try:
        return msgspec.json.decode(text, type=GitUpdateStatus)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def after_restart(status: GitUpdateStatus) -> GitUpdateStatus:
    """``status`` as the process that the restart started reports it (the restart is done)."""
    return msgspec.structs.replace(status, restart_scheduled=False, restart_required=False)


def short(commit: str) -> str:
    return commit[:12] if _FULL_HASH.match(commit) else commit
