"""``TransferTicket``: where and how a paglet moves (docs/implementing/movement.md).

A ticket is a value of the authoring API (``Paglet.dispatch`` takes one), so it is defined in
``paglets.core._transfer`` with its validation rules and limits; this module is its public home and
re-exports it unchanged.
"""

from __future__ import annotations

from paglets.core._transfer import (
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_TRANSFER_TIMEOUT,
    MAX_REQUIRED_CAPABILITIES,
    MAX_RETRY_INTERVAL,
    MAX_TRANSFER_RETRIES,
    MAX_TRANSFER_TIMEOUT,
    TransferTicket,
)

__all__ = [
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_TRANSFER_TIMEOUT",
    "MAX_REQUIRED_CAPABILITIES",
    "MAX_RETRY_INTERVAL",
    "MAX_TRANSFER_RETRIES",
    "MAX_TRANSFER_TIMEOUT",
    "TransferTicket",
]
