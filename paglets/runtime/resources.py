"""Lifecycle-managed cleanup callbacks of one paglet (docs/implementing/lifecycle.md): ``ResourceRegistry``.

The registry is part of the authoring API (``PagletContext.resources``), so it is defined in
``paglets.core._resources``; this module is its public home and re-exports it unchanged.
"""

from __future__ import annotations

from paglets.core._resources import Cleanup, ResourceCleanupError, ResourceRegistration, ResourceRegistry

__all__ = ["Cleanup", "ResourceCleanupError", "ResourceRegistration", "ResourceRegistry"]
