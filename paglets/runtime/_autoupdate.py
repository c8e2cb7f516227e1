"""A host's side of git auto-update (docs/auto-update.md): ``POST /admin/git-update``, the mesh broadcast,
the ``/health`` fields, and the restart.

:class:`AutoUpdater` runs each update attempt (:func:`paglets.runtime._gitupdate.update_checkout`) in a
worker thread, one at a time, so the event loop keeps serving while git and pip work. When an attempt
leaves the checkout on another commit than the one this process started on, the host restarts: after
the answer went out, a thread waits (bounded) until no move of this host is open, shuts the host down
(every active paglet is saved and comes back at the next start) and calls the restart callback, which
re-executes the command line (``paglets-host`` does ``python -m paglets.cli.host ...``).

Rules of the route:

- relay mode (``--public-url``/``--connect-to``): 403, updates are refused;
- a host with auto-update off answers ``{"ok": false, "status": "disabled"}`` (as paglets 2.0);
- a host without an API key answers 403: nobody may make it run ``git`` and ``pip`` unauthenticated
  (with a key, the server's bearer check already refused a missing or wrong key with 401);
- ``broadcast``: this host updates first, then asks every other host of its mesh (online members and
  hosts refused for another code version) to move to the commit it reached (or, when it could not, to
  the commit the request named), in parallel, and answers with their statuses in ``hosts``.

Peers that run another code version are found by the mesh (``mesh-host-rejected`` events); when their
version is a commit this checkout has and ours descends from it, they are behind, and this host asks
them once to move to its commit (at most once per peer and commit every :data:`NUDGE_INTERVAL` seconds).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec

from paglets.core.context_events import ContextEvent, ContextEventLog
from paglets.core.errors import ForbiddenError
from paglets.http.messages import Request, Response, json_response
from paglets.http.routing import Router
from paglets.runtime import _gitupdate as gitupdate
from paglets.runtime._config import HostConfig
from paglets.wire.limits import MAX_CONTROL_BODY
from paglets.wire.replies import GitUpdateStatus
from paglets.wire.requests import GitUpdateRequest, decode_request

__all__ = ["AutoUpdater", "build_admin_routes"]

_log = logging.getLogger("paglets.runtime")

#: Seconds a host waits for another host's answer to an update request (the other host fetches, may
#: wait for its checkout's lock and sync dependencies, each bounded by ``paglets.runtime._gitupdate``).
PEER_TIMEOUT: Final = gitupdate.FETCH_TIMEOUT + gitupdate.LOCK_WAIT + gitupdate.SYNC_TIMEOUT + 60.0
#: Seconds before the same peer is asked again about the same commit after a version mismatch.
NUDGE_INTERVAL: Final = 600.0
#: Peers remembered for that rule.
MAX_NUDGED: Final = 1024
#: Seconds a restart waits for the moves of this host to settle before it shuts the host down.
SETTLE_MOVES: Final = 30.0
#: Most hosts a broadcast asks (a mesh is bounded too; this bounds one request's work).
MAX_BROADCAST: Final = 256


class _Mesh(Protocol):
    def hosts(self, *, online_only: bool = ..., include_self: bool = ...) -> list[Any]: ...
    def rejected(self) -> list[Any]: ...


PostJson = Callable[[str, dict[str, object], float], Awaitable[object]]


class AutoUpdater:
    """See the module docstring. Built by the composition root; ``bind_restart`` gives it the host's
    shutdown once the host exists."""

    def __init__(
        self,
        cfg: HostConfig,
        *,
        address: Callable[[], str],
        events: ContextEventLog,
        mesh: _Mesh,
        post: PostJson,
        settle_moves: Callable[[float], Coroutine[Any, Any, int]],
        spawn: Callable[[Coroutine[Any, Any, Any]], object],
    ) -> None:
        self._name = cfg.name
        self._address = address
        self._events = events
        self._mesh = mesh
        self._post = post
        self._settle_moves = settle_moves
        self._spawn = spawn
        self.relay_mode = cfg.relay_mode
        self.has_key = bool(cfg.api_key)
        self.enabled = bool(cfg.auto_update_from_git) and not cfg.connect_to
        self.repo_root: Path | None = cfg.git_repo_root
        self.process_start_head = cfg.git_process_start_head or ""
        if self.enabled and self.repo_root is None:
            self.repo_root = gitupdate.find_checkout(Path.cwd())
        if self.enabled and self.repo_root is not None and not self.process_start_head:
            try:
                self.process_start_head = gitupdate.current_head(self.repo_root)
            except Exception:  # an empty repository: no commit yet
                self.process_start_head = ""
        self.head = self.process_start_head
        self.last: GitUpdateStatus | None = None
        self.restart_scheduled = False
        self._callback = cfg.auto_update_restart_callback
        self._reporter = cfg.auto_update_reporter
        self._restart_delay = max(0.0, float(cfg.auto_update_restart_delay))
        self._shutdown: Callable[[], None] | None = None
        self._run: Callable[[Coroutine[Any, Any, int], float], int] | None = None
        self._attempts: asyncio.Lock | None = None
        self._nudged: dict[tuple[str, str], float] = {}
        self._state_lock = threading.Lock()

    def bind_restart(
        self, shutdown: Callable[[], None], run: Callable[[Coroutine[Any, Any, int], float], int]
    ) -> None:
        """The host's ``shutdown`` and its way to run a coroutine on its loop from another thread."""
        self._shutdown = shutdown
        self._run = run

    def record(self, status: GitUpdateStatus) -> None:
        """Keep ``status`` as the last attempt (the command line hands over the start-up attempt)."""
        self.last = msgspec.structs.replace(status, host=status.host or self._name)
        if status.repo_root and status.after_head:
            self.head = status.after_head

    # --- /health ---------------------------------------------------------------------------------------

    def health_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "relay_mode": self.relay_mode,  # the directory leaves admin:git-update out of the capabilities
            "auto_update_from_git": self.enabled,
            "auto_update_restart_scheduled": self.restart_scheduled,
        }
        if self.enabled and self.repo_root is not None:
            fields.update(
                git_repo_root=str(self.repo_root),
                git_head=self.head,
                git_process_start_head=self.process_start_head,
            )
        if self.last is not None:
            fields["git_update"] = self.last
        return fields

    # --- one request -----------------------------------------------------------------------------------

    async def handle(self, body: GitUpdateRequest) -> GitUpdateStatus:
        """``POST /admin/git-update`` after the route's checks (see the module docstring)."""
        if not self.enabled:
            status = GitUpdateStatus(
                ok=False,
                status="disabled",
                error=f"git auto-update is off on host {self._name}",
                advice=gitupdate.ADVICE["disabled"],
                target_hash=body.target_hash,
                host=self._name,
                url=self._address(),
                finished_at=time.time(),
            )
            self.last = status
            return status
        status = await self.update(
            body.target_hash,
            source_name=body.source_name,
            source_url=body.source_url,
            restart=not body.broadcast,  # a broadcast restarts this host after the others answered
        )
        if not body.broadcast:
            return status
        # the others move to the commit this host reached, or are asked for the commit named (each says
        # for itself whether it has it); without either there is nothing to ask them
        target = status.after_head if status.ok else (status.target_hash or body.target_hash)
        hosts = await self.broadcast(target) if target else []
        scheduled = self.schedule_restart() if status.restart_required else False
        status = msgspec.structs.replace(status, hosts=hosts, restart_scheduled=scheduled)
        self.last = status
        self._report(status)
        return status

    async def update(
        self, target: str = "", *, source_name: str = "", source_url: str = "", restart: bool = True
    ) -> GitUpdateStatus:
        """One attempt on this host's checkout, in a worker thread; schedules the restart if needed
        (unless ``restart`` is false: the caller does)."""
        if self._attempts is None:
            self._attempts = asyncio.Lock()
        async with self._attempts:  # one attempt at a time per host (the checkout lock covers hosts)
            if self.repo_root is None:
                where = str(Path.cwd())
                status = await asyncio.to_thread(gitupdate.update_checkout, where, target=target)
            else:
                status = await asyncio.to_thread(
                    gitupdate.update_checkout,
                    self.repo_root,
                    process_start_head=self.process_start_head,
                    target=target,
                )
        status = msgspec.structs.replace(
            status, host=self._name, url=self._address(), source_name=source_name, source_url=source_url
        )
        if status.after_head:
            self.head = status.after_head
        if status.restart_required and restart:
            status = msgspec.structs.replace(status, restart_scheduled=self.schedule_restart())
        self.last = status
        if restart:
            self._report(status)
        return status

    def _report(self, status: GitUpdateStatus) -> None:
        data = {
            "status": status.status,
            "before_head": status.before_head,
            "after_head": status.after_head,
            "target_hash": status.target_hash,
            "source_name": status.source_name,
            "restart_scheduled": status.restart_scheduled,
        }
        if not status.ok:
            data["reason"] = status.error
        self._events.emit("git-update", data=data)
        if self._reporter is not None:
            try:
                self._reporter(describe(status))
            except Exception:
                _log.exception("auto-update reporter of host %s failed", self._name)

    # --- the broadcast ---------------------------------------------------------------------------------

    def peer_urls(self) -> list[str]:
        """Every other host this host's mesh knows: members (online or not) and refused ones."""
        me = self._address().rstrip("/")
        urls: dict[str, None] = {}
        for ref in [*self._mesh.hosts(online_only=True, include_self=False), *self._mesh.rejected()]:
            url = str(ref.url).rstrip("/")
            if url != me:
                urls[url] = None
        return list(urls)[:MAX_BROADCAST]

    async def broadcast(self, target: str) -> list[GitUpdateStatus]:
        """Ask every other host to move to ``target``; their answers (failures as statuses too)."""
        urls = self.peer_urls()
        return list(await asyncio.gather(*(self.ask(url, target) for url in urls)))

    async def ask(self, url: str, target: str) -> GitUpdateStatus:
        body: dict[str, object] = {
            "target_hash": target,
            "source_name": self._name,
            "source_url": self._address(),
        }
        try:
            reply = await self._post(f"{url}/admin/git-update", body, PEER_TIMEOUT)
            status = msgspec.convert(reply, GitUpdateStatus)
        except Exception as exc:  # every failure is reported as that host's status
            text = str(exc) or type(exc).__name__
            status = GitUpdateStatus(
                ok=False, status="failed", error=text, advice=_request_advice(text), target_hash=target
            )
        if not status.url:
            status = msgspec.structs.replace(status, url=url)
        if not status.ok:
            _log.warning("host %s: %s", self._name, describe(status))
        return status

    # --- peers behind us -------------------------------------------------------------------------------

    def on_event(self, event: ContextEvent) -> None:
        """A listener of the host's events: a peer refused for another code version that is an older
        commit of our branch is asked to move to ours."""
        if event.kind != "mesh-host-rejected" or not self.enabled or self.relay_mode:
            return
        url = str(event.data.get("url") or "").rstrip("/")
        version = str(event.data.get("code_version") or "")
        head = self.process_start_head
        if not url or not head or not gitupdate._FULL_HASH.match(version) or version == head:
            return
        now = time.monotonic()
        with self._state_lock:
            if now - self._nudged.get((url, head), -NUDGE_INTERVAL) < NUDGE_INTERVAL:
                return
            self._nudged[(url, head)] = now
            while len(self._nudged) > MAX_NUDGED:
                self._nudged.pop(next(iter(self._nudged)))
        self._spawn(self._nudge(url, version, head))

    async def _nudge(self, url: str, version: str, head: str) -> None:
        root = self.repo_root
        if root is None:
            return
        behind = await asyncio.to_thread(gitupdate.is_ancestor, root, version, head)
        if behind:
            _log.info("host %s: asking %s (at %s) to move to %s", self._name, url, version[:12], head[:12])
            await self.ask(url, head)

    # --- the restart -----------------------------------------------------------------------------------

    def schedule_restart(self) -> bool:
        """Start the restart thread (once); ``False`` when this host cannot restart itself."""
        if self._callback is None or self._shutdown is None:
            _log.warning("host %s: the checkout changed, but nothing can restart this host", self._name)
            return False
        with self._state_lock:
            if self.restart_scheduled:
                return True
            self.restart_scheduled = True
        threading.Thread(target=self._restart, name=f"paglets-restart-{self._name}", daemon=True).start()
        return True

    def _restart(self) -> None:
        done = threading.Event()
        done.wait(self._restart_delay)  # lets the answer that scheduled the restart go out first
        try:
            if self._run is not None:
                try:
                    left = self._run(self._settle_moves(SETTLE_MOVES), SETTLE_MOVES + 5.0)
                    if left:
                        _log.warning("host %s: restarting with %d move(s) still open", self._name, left)
                except Exception:
                    _log.exception("host %s: waiting for moves before the restart failed", self._name)
            if self._shutdown is not None:
                self._shutdown()
        finally:
            if self._callback is not None:
                self._callback()


def _request_advice(text: str) -> str:
    if "401" in text or "Authentication" in text:
        return "give every host of the mesh the same API key"
    if "403" in text or "Forbidden" in text:
        return "that host refuses updates (relay mode, or it has no API key)"
    return "check that the host is running and reachable"


def describe(status: GitUpdateStatus) -> str:
    """One line about ``status`` (the console line of ``paglets-host`` and ``paglets mesh update``)."""
    short = gitupdate.short
    if status.status == "updated":
        text = f"updated {short(status.process_start_head)} -> {short(status.after_head)}"
        if status.synced:
            text += f" (dependencies synced with {status.synced})"
        if status.restart_scheduled:
            text += "; restarting"
        elif status.restart_required:
            text += "; restart the host to run it"
        return text
    if status.status == "unchanged":
        return f"unchanged at {short(status.after_head or status.process_start_head)}"
    text = f"{status.status}: {one_line(status.error)}"
    return f"{text} ({status.advice})" if status.advice else text


#: Longest error text in a one-line description (the status keeps the whole text).
MAX_LINE_ERROR: Final = 400


def one_line(text: str) -> str:
    """``text`` (a command's output, possibly many lines) as one line."""
    joined = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    return joined if len(joined) <= MAX_LINE_ERROR else joined[: MAX_LINE_ERROR - 3] + "..."


# --- the route -----------------------------------------------------------------------------------------


def build_admin_routes(router: Router, updater: AutoUpdater) -> None:
    """``POST /admin/git-update`` (see the module docstring)."""

    async def git_update(request: Request) -> Response:
        if updater.relay_mode:
            raise ForbiddenError("git auto-update is disabled in relay mode")
        body: GitUpdateRequest = await request.json(
            MAX_CONTROL_BODY, decode=partial(decode_request, cls=GitUpdateRequest, max_bytes=MAX_CONTROL_BODY)
        )
        if updater.enabled and not updater.has_key:
            raise ForbiddenError(
                "this host accepts update requests only with an API key: start it with PAGLETS_API_KEY set"
            )
        return json_response(await updater.handle(body))

    router.post("/admin/git-update", git_update)
