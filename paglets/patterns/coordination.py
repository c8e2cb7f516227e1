"""Fan-out by cloning: a parent paglet clones itself to many hosts, each clone works there and reports back.

:class:`MeshFanoutMixin` keeps the parent's bookkeeping in a :class:`MeshFanoutState` (extend it with
your own fields): which hosts are pending, which reported, which failed and why, the proxies of the
clones (for cleanup), and one deadline for the whole fan-out. The usual shape::

    class Survey(MeshFanoutMixin, Paglet[SurveyState]):
        def start(self, timeout):
            self.fanout_reset(timeout=timeout)
            for host in self.fanout_available_hosts():
                self.fanout_prepare_clone(host)          # the clone inherits role="child" and its target
                try:
                    proxy = self.clone(host.url)
                except Exception as exc:
                    self.fanout_record_error(host.name, str(exc))
                else:
                    self.fanout_record_child_proxy(host.name, proxy)
                finally:
                    self.fanout_finish_clone_prepare()  # the parent is the parent again

        def on_clone(self, event):                       # runs in the clone, on its host
            ...                                          # work, then message the parent:
            # self.send(self.state.parent_agent_id, Message("child_result", ...),
            #           host_url=self.state.parent_host_url)

Children report to the parent with ordinary messages; the parent calls :meth:`fanout_record_done` (or
``fanout_record_error``) for each, :meth:`fanout_expire_pending` once the deadline passed (every host
still pending becomes an error) and :meth:`fanout_cleanup_children` to dispose the clones. Never block
the parent's handler waiting for its children: their reports are messages to that same paglet and are
handled one at a time after the handler returns.

:class:`CursorDrainMixin` keeps an ordered event list with cursors, for readers that poll with "what
came after N".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.agent import PagletState
from paglets.remote.mesh import HostRef
from paglets.remote.proxy import PagletProxy

__all__ = ["ChildRoleState", "CursorDrainMixin", "MeshFanoutMixin", "MeshFanoutState"]

#: Role of the paglet that fans out, and of its clones.
PARENT: Final = "parent"
CHILD: Final = "child"


@dataclass
class ChildRoleState(PagletState):
    """Whether this copy is the parent or a clone, where the parent is and where a clone was sent."""

    role: str = PARENT
    parent_host_url: str = ""
    parent_agent_id: str = ""
    target_host_name: str = ""
    target_host_url: str = ""


@dataclass
class MeshFanoutState(ChildRoleState):
    #: ``time.monotonic()`` on the parent's host after which pending hosts count as failed (0: none).
    deadline: float = 0.0
    pending_hosts: list[str] = field(default_factory=list)
    done_hosts: list[str] = field(default_factory=list)
    #: Host name → proxy wire (``{"host_url", "agent_id"}``) of the clone sent there.
    child_proxies: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cleanup_errors: dict[str, str] = field(default_factory=dict)


def _paglet(mixin: object) -> Any:
    """The paglet a mixin is part of (mixins are used with ``Paglet`` subclasses only)."""
    return mixin


class MeshFanoutMixin:
    """Parent/child clone fan-out bookkeeping (see the module docstring); state: :class:`MeshFanoutState`."""

    def fanout_reset(self, *, timeout: float) -> None:
        """Become the parent of a new fan-out that must finish within ``timeout`` seconds."""
        me = _paglet(self)
        with me.locked_state() as state:
            state.role = PARENT
            state.parent_host_url = me.context.address
            state.parent_agent_id = me.agent_id
            state.target_host_name = ""
            state.target_host_url = ""
            state.pending_hosts = []
            state.done_hosts = []
            state.child_proxies = {}
            state.errors = {}
            state.cleanup_errors = {}
            state.deadline = time.monotonic() + max(0.0, float(timeout))
        me.notify_all_state_changed()

    def fanout_available_hosts(self, *, include_self: bool = True) -> list[HostRef]:
        """The online hosts of the mesh (same code version: the mesh admits no other)."""
        return list(_paglet(self).context.available_hosts(online_only=True, include_self=include_self))

    def fanout_select_hosts(
        self, targets: list[str] | tuple[str, ...], *, include_self: bool = True
    ) -> list[HostRef]:
        """The hosts named in ``targets`` (names or URLs; all online hosts when empty). A target that is
        unknown or offline is recorded as an error and left out."""
        if not targets:
            return self.fanout_available_hosts(include_self=include_self)
        chosen: list[HostRef] = []
        for target in targets:
            ref = _paglet(self).context.host_status(target)
            if ref is None or not ref.online:
                self.fanout_record_error(target, "host is not online (or not in the mesh)")
            elif all(ref.url != other.url for other in chosen):
                chosen.append(ref)
        return chosen

    def fanout_prepare_clone(self, host: HostRef) -> None:
        """Mark ``host`` pending and turn this copy into a child bound for it, so that the clone made next
        inherits that; call :meth:`fanout_finish_clone_prepare` right after cloning."""
        with _paglet(self).locked_state() as state:
            if host.name not in state.pending_hosts:
                state.pending_hosts.append(host.name)
            state.role = CHILD
            state.target_host_name = host.name
            state.target_host_url = host.url

    def fanout_finish_clone_prepare(self) -> None:
        with _paglet(self).locked_state() as state:
            state.role = PARENT
            state.target_host_name = ""
            state.target_host_url = ""

    def fanout_record_child_proxy(self, host_name: str, proxy: PagletProxy) -> None:
        with _paglet(self).locked_state() as state:
            state.child_proxies[host_name] = proxy.to_wire()

    def fanout_record_error(self, host_name: str, error: str) -> None:
        me = _paglet(self)
        with me.locked_state() as state:
            state.pending_hosts = [name for name in state.pending_hosts if name != host_name]
            state.errors[host_name] = str(error)
        me.notify_all_state_changed()

    def fanout_record_done(self, host_name: str) -> None:
        if not host_name:
            return
        me = _paglet(self)
        with me.locked_state() as state:
            state.pending_hosts = [name for name in state.pending_hosts if name != host_name]
            if host_name not in state.done_hosts:
                state.done_hosts.append(host_name)
        me.notify_all_state_changed()

    def fanout_expire_pending(self, error: str) -> None:
        """Once the deadline has passed, every still pending host becomes an error (``error``)."""
        me = _paglet(self)
        with me.locked_state() as state:
            if not state.pending_hosts or state.deadline <= 0 or time.monotonic() < state.deadline:
                return
            for host_name in state.pending_hosts:
                state.errors[host_name] = str(error)
            state.pending_hosts = []
        me.notify_all_state_changed()

    def fanout_wait_for(self, ready: Callable[[Any], bool], *, wait_timeout: float) -> None:
        """Wait (at most ``wait_timeout`` seconds, never past the deadline) until ``ready(state)``.

        Only from a thread other than the message handler: children's reports are messages, which the
        handler cannot take while it waits.
        """
        me = _paglet(self)
        timeout = max(0.0, float(wait_timeout))
        with me.locked_state() as state:
            if state.deadline > 0:
                timeout = min(timeout, max(0.0, state.deadline - time.monotonic()))
        me.wait_state(ready, timeout=timeout)

    def fanout_cleanup_children(self) -> None:
        """Dispose every recorded clone (one that is already gone counts as disposed); failures go to
        ``cleanup_errors``."""
        from paglets.core.errors import InvalidAgentError

        me = _paglet(self)
        with me.locked_state() as state:
            children = {name: dict(wire) for name, wire in state.child_proxies.items()}
        failures: dict[str, str] = {}
        for host_name, wire in children.items():
            try:
                PagletProxy.from_wire(wire, me.context.host.client).dispose()
            except InvalidAgentError:
                pass
            except Exception as exc:
                failures[host_name] = str(exc) or type(exc).__name__
        with me.locked_state() as state:
            state.cleanup_errors.update(failures)
            for host_name in children:
                if host_name not in failures:
                    state.child_proxies.pop(host_name, None)
        me.notify_all_state_changed()


class CursorDrainMixin:
    """An event list with cursors: needs ``next_cursor: int`` (starting at 1) and ``events: list[dict]``
    in the state. Readers pass the last cursor they saw and get what came after it."""

    def cursor_append_events(self, events: list[dict[str, Any]]) -> int:
        """Append ``events`` (each gets a ``cursor``); returns the last cursor given out."""
        me = _paglet(self)
        with me.locked_state() as state:
            last = int(state.next_cursor) - 1
            for event in events:
                item = dict(event)
                item["cursor"] = last = int(state.next_cursor)
                state.next_cursor = last + 1
                state.events.append(item)
        me.notify_all_state_changed()
        return last

    def cursor_drain_events(self, *, after_cursor: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        """``(events, cursor, more)``: at most ``limit`` events after ``after_cursor``, the cursor to pass
        next time, and whether more are waiting."""
        limit = max(1, int(limit))
        with _paglet(self).locked_state() as state:
            newer = [event for event in state.events if int(event.get("cursor", 0)) > after_cursor]
        chosen = newer[:limit]
        cursor = max((int(event.get("cursor", 0)) for event in chosen), default=after_cursor)
        return chosen, cursor, len(newer) > len(chosen)
