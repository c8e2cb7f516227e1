"""Value types of deactivation and activation (docs/implementing/persistence.md).

``DeactivationRequest``, ``DeactivationPolicy``, ``QueuedMessage`` and ``InactiveRecord`` belong to the
authoring API (a paglet's ``deactivate`` and ``deactivation_policy`` use them), so they are defined in
``paglets.core._persistency``; this module is their public home and re-exports them unchanged.
"""

from __future__ import annotations

from paglets.core._persistency import (
    INACTIVE_RECORD_SCHEMA_VERSION,
    DeactivationPolicy,
    DeactivationRequest,
    InactiveRecord,
    QueuedMessage,
)

__all__ = [
    "INACTIVE_RECORD_SCHEMA_VERSION",
    "DeactivationPolicy",
    "DeactivationRequest",
    "InactiveRecord",
    "QueuedMessage",
]
