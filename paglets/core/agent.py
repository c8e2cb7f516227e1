"""The paglet authoring API: ``Paglet``, ``PagletState``, ``PagletContext``.

For authors: docs/implementing/index.md and docs/implementing/lifecycle.md.

A paglet is a ``Paglet[StateT]`` subclass with a dataclass ``State``; only the state moves or persists,
every other attribute is transient. The runtime constructs the paglet, attaches a ``PagletContext`` and
calls the hooks; the paglet reaches its host only through that context.

The boundary between this pure-Python layer and the runtime is the :class:`HostFacade` protocol: the
context forwards every call to an object implementing it — the in-process ``Host``, or, inside a paglet's
child process, a facade that turns each call into a request to the parent host. Both are defined in
``paglets.core._context`` and re-exported here. Nothing in this module does I/O.

Concurrency: each paglet has one re-entrant lock with a condition bound to it (``locked``,
``locked_state``, ``state_locked``, ``wait_state``/``notify_*_state_changed``; nothing notifies
automatically) and a separate child-local message condition (``wait_message``/``notify_message``), which
only the same process can signal: as in paglets 2.0, a handler waiting on it is never woken by another
message, because handlers run one at a time. Every wait takes a ``timeout`` in seconds; ``None`` waits
without a deadline, as in the contract.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Concatenate, Final, Generic, ParamSpec, TypeVar, cast, final

from paglets.core._artifact_refs import ARTIFACT_COPY, ArtifactRef, PagletFileRef
from paglets.core._context import (
    ACTIVE,
    INACTIVE,
    HostFacade,
    PagletContext,
    Proxy,
    ServiceValue,
    Target,
)
from paglets.core._persistency import DeactivationPolicy, DeactivationRequest
from paglets.core._resources import ResourceRegistry
from paglets.core.errors import HostError, NotHandledError
from paglets.core.events import CloneEvent, CreationEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import Message, ReplySet
from paglets.core.runtime_values import ServiceScope

__all__ = [
    "ACTIVE",
    "INACTIVE",
    "NOT_HANDLED",
    "HostFacade",
    "Paglet",
    "PagletContext",
    "PagletState",
    "state_locked",
]


class PagletState:
    """Marker base class of paglet states: subclass it and decorate the subclass with ``@dataclass``.

    Only this object moves and persists; field types are those of the dataclass codec (nested
    dataclasses, primitives, bytes, collections, enums, paths, ``PagletProxyRef``).
    """


@final
class _NotHandled:
    """Type of the ``NOT_HANDLED`` sentinel."""

    __slots__ = ()
    _instance: _NotHandled | None = None

    def __new__(cls) -> _NotHandled:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_HANDLED"


#: Return this from ``handle_message`` (or ``self.not_handled()``) to make the sender get
#: ``NotHandledError`` (HTTP 422).
NOT_HANDLED: Final = _NotHandled()

StateT = TypeVar("StateT", bound=PagletState)
PagletT = TypeVar("PagletT", bound="Paglet[Any]")
P = ParamSpec("P")
R = TypeVar("R")


def state_locked(method: Callable[Concatenate[PagletT, P], R]) -> Callable[Concatenate[PagletT, P], R]:
    """Decorate a paglet method so that it runs under the paglet's re-entrant lock (``locked()``)."""

    @functools.wraps(method)
    def wrapper(self: PagletT, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._state_lock:
            return method(self, *args, **kwargs)

    return wrapper


# --- the paglet -------------------------------------------------------------------------------------------


class Paglet(Generic[StateT]):
    """Base class of mobile agents; subclasses set ``State`` and override hooks and ``handle_message``.

    The runtime constructs paglets itself (``Paglet(state, agent_id=...)``), attaches the context and
    calls the hooks on the paglet's process; authors never construct one on a host directly.
    """

    #: The dataclass type of this paglet's state (required).
    State: type[StateT]
    ACTIVE: Final = ACTIVE
    INACTIVE: Final = INACTIVE
    #: Kept for paglets 2.0 compatibility and ignored: delivery is always one message at a time.
    MAILBOX_WORKERS: int = 4

    def __init__(self, state: StateT | None = None, *, agent_id: str | None = None) -> None:
        state_cls = self.state_class()
        if state is None:
            state = state_cls()
        candidate: object = state  # callers may pass anything; only dataclass instances are states
        if not is_dataclass(candidate) or isinstance(candidate, type):
            raise HostError(f"{type(self).__name__} state must be a dataclass instance, got {state!r}")
        self.agent_id: str = agent_id or uuid.uuid4().hex
        self.state: StateT = state
        self.resources: ResourceRegistry = ResourceRegistry()
        self._state_lock: threading.RLock = threading.RLock()
        self._state_condition: threading.Condition = threading.Condition(self._state_lock)
        self._message_condition: threading.Condition = threading.Condition(threading.Lock())
        self._context: PagletContext | None = None
        self._last_proxy: Proxy | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} agent_id={self.agent_id}>"

    @classmethod
    def state_class(cls) -> type[StateT]:
        """The ``State`` class; ``HostError`` when it is missing or not a dataclass."""
        state_cls = getattr(cls, "State", None)
        if state_cls is None:
            raise HostError(f"{cls.__name__} must define a dataclass State class")
        if not isinstance(state_cls, type) or not is_dataclass(state_cls):
            raise HostError(f"{cls.__name__}.State must be a class decorated with @dataclass")
        return cast("type[StateT]", state_cls)

    # --- context ------------------------------------------------------------------------------------------

    @property
    def context(self) -> PagletContext:
        """The paglet's context; ``HostError`` before the runtime attached one."""
        context = self._context
        if context is None:
            raise HostError(f"{type(self).__name__} {self.agent_id} is not attached to a host context")
        return context

    def _attach(self, context: PagletContext) -> None:
        """Called by the runtime once, before the first hook."""
        self._context = context

    # --- concurrency --------------------------------------------------------------------------------------

    def locked(self) -> AbstractContextManager[bool]:
        """Context manager holding the paglet's re-entrant lock."""
        return self._state_lock

    @contextmanager
    def locked_state(self) -> Iterator[StateT]:
        """Context manager yielding ``self.state`` under the paglet's lock."""
        with self._state_lock:
            yield self.state

    def wait_state(self, predicate: Callable[[StateT], bool], timeout: float | None = None) -> bool:
        """Block until ``predicate(state)`` is true or ``timeout`` seconds passed; returns its last value.

        Returns at once when the predicate already holds. Waiters are woken only by
        ``notify_state_changed``/``notify_all_state_changed``.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._state_condition:
            while True:
                if predicate(self.state):
                    return True
                if deadline is None:
                    self._state_condition.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return bool(predicate(self.state))
                self._state_condition.wait(remaining)

    def notify_state_changed(self) -> None:
        """Wake one ``wait_state`` waiter."""
        with self._state_condition:
            self._state_condition.notify()

    def notify_all_state_changed(self) -> None:
        """Wake every ``wait_state`` waiter."""
        with self._state_condition:
            self._state_condition.notify_all()

    def wait_message(self, timeout: float | None = None) -> bool:
        """Wait for ``notify_message``/``notify_all_messages`` from this process; False on timeout."""
        with self._message_condition:
            return self._message_condition.wait(timeout)

    def notify_message(self) -> None:
        with self._message_condition:
            self._message_condition.notify()

    def notify_all_messages(self) -> None:
        with self._message_condition:
            self._message_condition.notify_all()

    # --- movement and lifecycle ---------------------------------------------------------------------------

    def _remember(self, proxy: Proxy) -> Proxy:
        self._last_proxy = proxy
        return proxy

    def dispatch(self, target: Target) -> Proxy:
        """Move this paglet to ``target`` (URL, mesh host name or ``TransferTicket``); its new proxy."""
        return self._remember(self.context.dispatch(self.agent_id, target))

    def clone(self, target: Target | None = None) -> Proxy:
        """Copy this paglet to ``target`` (None: this host); the clone's proxy."""
        return self._remember(self.context.clone(self.agent_id, target))

    def dispatch_to(self, name_or_url: str) -> Proxy:
        return self._remember(self.context.dispatch_to(self.agent_id, name_or_url))

    def clone_to(self, name_or_url: str) -> Proxy:
        return self._remember(self.context.clone_to(self.agent_id, name_or_url))

    def deactivate(
        self,
        *,
        reason: str = "deactivate",
        policy: DeactivationPolicy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Proxy:
        """Store this paglet inactive (request ``source="self"``); a proxy to its inactive record."""
        request = DeactivationRequest(reason=reason, source="self", policy=policy, metadata=metadata or {})
        return self._remember(self.context.deactivate(self.agent_id, request))

    # --- messaging ----------------------------------------------------------------------------------------

    def send(self, target_agent_id: str, message: Message, *, host_url: str | None = None) -> Any:
        """Send ``message`` to another paglet and return its reply."""
        return self.context.send(target_agent_id, message, host_url=host_url)

    def multicast(
        self, kind: str | Message, args: dict[str, Any] | None = None, *, include_self: bool = True
    ) -> ReplySet:
        """Send to every ready paglet of this host (host-side contexts only)."""
        exclude = None if include_self else {self.agent_id}
        return self.context.multicast(kind, args, exclude=exclude)

    @staticmethod
    def not_handled() -> _NotHandled:
        """The ``NOT_HANDLED`` sentinel, for ``return self.not_handled()`` in ``handle_message``."""
        return NOT_HANDLED

    # --- services -----------------------------------------------------------------------------------------

    def advertise_service(
        self,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceValue:
        return self.context.advertise_service(
            name, capabilities=capabilities, metadata=metadata, scope=scope, ttl=ttl, agent_id=self.agent_id
        )

    def unadvertise_service(self, name: str) -> list[ServiceValue]:
        return self.context.unadvertise_service(name, agent_id=self.agent_id)

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceValue | None:
        return self.context.lookup_service(name, capability=capability, scope=scope)

    def lookup_services(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[ServiceValue]:
        return self.context.lookup_services(name, capability=capability, scope=scope)

    def advertise_contract(
        self,
        contract: ServiceValue,
        *,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ServiceValue:
        return self.context.advertise_contract(
            contract, scope=scope, ttl=ttl, metadata=metadata, agent_id=self.agent_id
        )

    def lookup_contract(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> ServiceValue | None:
        return self.context.lookup_contract(contract, operation=operation, scope=scope)

    def lookup_contracts(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[ServiceValue]:
        return self.context.lookup_contracts(contract, operation=operation, scope=scope)

    def require_contract(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> ServiceValue:
        return self.context.require_contract(contract, operation=operation, scope=scope)

    def lease_contract(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float = 60.0,
    ) -> ServiceValue:
        return self.context.lease_contract(contract, operation=operation, scope=scope, ttl=ttl)

    # --- storage, files, artifacts ------------------------------------------------------------------------

    def work_dir(self, *, create: bool = True) -> Path:
        return self.context.work_dir(create=create, agent_id=self.agent_id)

    def persistent_storage(self, *, quota_bytes: int | None = None) -> Any:
        return self.context.persistent_storage(quota_bytes=quota_bytes, agent_id=self.agent_id)

    def register_file(
        self, path: Path | str, *, name: str | None = None, mode: str = ARTIFACT_COPY
    ) -> PagletFileRef:
        return self.context.register_file(path, name=name, mode=mode, agent_id=self.agent_id)

    def registered_files(self) -> list[PagletFileRef]:
        return self.context.registered_files(agent_id=self.agent_id)

    def unregister_file(self, name_or_ref: str | PagletFileRef) -> None:
        self.context.unregister_file(name_or_ref, agent_id=self.agent_id)

    def file_path(self, name_or_ref: str | PagletFileRef) -> Path:
        return self.context.file_path(name_or_ref, agent_id=self.agent_id)

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str | None = None,
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
    ) -> ArtifactRef:
        return self.context.upload_artifact(
            path,
            host_url=host_url,
            owner_agent_id=self.agent_id if owner_agent_id is None else owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
        )

    def download_artifact(
        self, artifact: ArtifactRef, target: Path | str, *, move: bool = False
    ) -> ArtifactRef:
        return self.context.download_artifact(artifact, target, move=move)

    def delete_artifact(self, artifact: ArtifactRef) -> None:
        self.context.delete_artifact(artifact)

    # --- hooks (override; the defaults do nothing unless stated) ------------------------------------------

    def on_creation(self, event: CreationEvent) -> None:
        """After creation, before ``Host.create`` returns; ``event.init`` is the creator's value."""

    def on_dispatching(self, event: MobilityEvent) -> None:
        """On the source, before the state snapshot of a dispatch."""

    def on_arrival(self, event: MobilityEvent) -> None:
        """On the target after a dispatch or retract (registered files are already present)."""

    def on_reverting(self, event: MobilityEvent) -> None:
        """On the source of a retract, before the state snapshot."""

    def on_cloning(self, event: CloneEvent) -> None:
        """On the original, before the snapshot (its changes are copied into the clone)."""

    def on_clone(self, event: CloneEvent) -> None:
        """On the new clone."""

    def on_cloned(self, event: CloneEvent) -> None:
        """On the original, after the target accepted the clone."""

    def on_deactivating(self, event: PersistencyEvent) -> None:
        """After the policy was chosen, before resource cleanup and the snapshot."""

    def on_activation(self, event: PersistencyEvent) -> None:
        """When an inactive paglet is activated again (then ``run()`` starts)."""

    def on_disposing(self, event: PersistencyEvent) -> None:
        """Before disposal (then resource cleanup)."""

    def deactivation_policy(self, request: DeactivationRequest) -> DeactivationPolicy:
        """Choose the policy of a deactivation; default: the request's policy or the default policy."""
        return request.policy or DeactivationPolicy()

    def run(self) -> None:
        """Started on its own thread after each creation/arrival/clone/activation hook replied."""

    def handle_message(self, message: Message) -> Any:
        """Handle one message and return the reply; the default raises ``NotHandledError``."""
        raise NotHandledError(f"{type(self).__name__} did not handle {message.kind!r}")
