"""Lifecycle-managed cleanup callbacks of one paglet (docs/implementing/lifecycle.md; public home
``paglets.runtime.resources``).

A paglet registers what must be released before it leaves its process (sockets, threads, leases):
``register(name, cleanup, suppress=...)``. The runtime calls ``cleanup(reason=...)`` before dispatch,
retract, deactivate and dispose (not before clone). Rules:

- callbacks run in *reverse* registration order (last registered, first released); registering an
  existing name replaces its callback and keeps its place in the order;
- a callback that succeeds is removed; a failing callback registered with ``suppress=True`` is removed
  too and its error ignored;
- a failing callback without ``suppress`` stays registered, the others still run, and ``cleanup`` then
  raises ``ResourceCleanupError`` (a ``LifecycleError``) listing every such failure in ``failures``
  (name → exception), chained from the first one. The runtime aborts the lifecycle operation then, so
  the paglet stays active.

The registry is child-local (it never moves) and thread-safe: callbacks run outside its lock, so a
callback may register or remove resources.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from paglets.core.errors import ResourceCleanupError

__all__ = ["Cleanup", "ResourceCleanupError", "ResourceRegistration", "ResourceRegistry"]

Cleanup = Callable[[], object]


@dataclass(frozen=True, slots=True)
class ResourceRegistration:
    name: str
    cleanup: Cleanup
    suppress: bool = False


def _cleanup_error(failures: dict[str, Exception], reason: str) -> ResourceCleanupError:
    details = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures.items())
    error = ResourceCleanupError(f"resource cleanup ({reason}) failed for {details}")
    # ``failures`` is the paglets 2.0 attribute (name -> exception).
    setattr(error, "failures", failures)  # noqa: B010 - the error class does not declare it
    return error


class ResourceRegistry:
    """See the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resources: dict[str, ResourceRegistration] = {}

    def register(self, name: str, cleanup: Cleanup, *, suppress: bool = False) -> None:
        """Register ``cleanup`` under ``name`` (replaces an earlier one); empty names: ``ValueError``."""
        if not isinstance(name, str) or not name:
            raise ValueError("resource name must be a non-empty string")
        if not callable(cleanup):
            raise TypeError(f"cleanup for resource {name!r} is not callable")
        registration = ResourceRegistration(name, cleanup, bool(suppress))
        with self._lock:
            self._resources[name] = registration

    def track_closeable(
        self, name: str, obj: object, *, method: str = "close", suppress: bool = False
    ) -> None:
        """Register ``obj.<method>()`` (default ``close``) as the cleanup of ``name``."""
        cleanup = getattr(obj, method)
        if not callable(cleanup):
            raise TypeError(f"{type(obj).__name__}.{method} is not callable")
        self.register(name, cleanup, suppress=suppress)

    def remove(self, name: str) -> None:
        """Forget ``name`` without calling its cleanup; unknown names are ignored."""
        with self._lock:
            self._resources.pop(name, None)

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        """Run every cleanup, newest first; see the module docstring for the failure rules."""
        with self._lock:
            registrations = list(reversed(self._resources.values()))
        failures: dict[str, Exception] = {}
        for registration in registrations:
            try:
                registration.cleanup()
            except Exception as exc:
                if not registration.suppress:
                    failures[registration.name] = exc
                    continue
            with self._lock:
                # Only drop the registration we ran; a callback may have replaced it meanwhile.
                if self._resources.get(registration.name) is registration:
                    del self._resources[registration.name]
        if failures:
            raise _cleanup_error(failures, reason) from next(iter(failures.values()))

    def clear(self) -> None:
        """Forget every registration without calling any cleanup."""
        with self._lock:
            self._resources.clear()

    def status(self) -> dict[str, bool]:
        """``{name: suppress}`` in registration order."""
        with self._lock:
            return {name: registration.suppress for name, registration in self._resources.items()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._resources)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._resources
