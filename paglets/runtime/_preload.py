"""The modules every paglet process needs, imported ahead of time by the zygote (Linux) or by each spare
process (portable), and the import loop both use."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Final

__all__ = ["HTTP_MODULES", "RUNTIME_MODULES", "SPARE_MODULES", "preload_modules"]

#: Modules the template imports when they exist (missing ones are skipped, failing ones reported).
RUNTIME_MODULES: Final = (
    "msgspec",
    "selectors",
    "traceback",
    "threading",
    "dataclasses",
    "paglets.core.errors",
    "paglets.core.agent",
    "paglets.core.messages",
    "paglets.core.events",
    "paglets.core.context_events",
    "paglets.core.itinerary",
    "paglets.core.runtime_values",
    "paglets.wire.limits",
    "paglets.wire.ipc",
    "paglets.wire.messages",
    "paglets.serialization.codec",
    "paglets.runtime._ring",
    "paglets.runtime._handoff",
    "paglets.runtime._channel_layout",
    "paglets.runtime.child._channel",
    "paglets.runtime._procutil",
    "paglets.wire.values",
    "paglets.wire.boot",
    "paglets.persistence.persistency",
    "paglets.persistence.storage",
    "paglets.remote.proxy",
    "paglets.remote.client",
    "paglets.http.client",
    "paglets.runtime.child._facade",
    "paglets.runtime.child.main",
)


#: What a paglet process loads only once its paglet talks HTTP itself (a proxy to another host, an
#: artifact elsewhere). The zygote imports them once for all its children (fork shares them); a spare
#: interpreter leaves them out, as each spare pays its own imports (about a quarter of them).
HTTP_MODULES: Final = ("paglets.remote.client", "paglets.http.client")

#: What each spare interpreter (portable backend) imports before it reports ready.
SPARE_MODULES: Final = (
    *(name for name in RUNTIME_MODULES if name not in HTTP_MODULES),
    "paglets.runtime._portable_ipc",
)


def preload_modules(names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Import ``names``; the ones imported, and the ones that failed (name -> error text)."""
    loaded: list[str] = []
    failed: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name in RUNTIME_MODULES and exc.name is not None and name.startswith(exc.name):
                continue  # a runtime module that does not exist (yet)
            failed[name] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
        else:
            loaded.append(name)
    return loaded, failed
